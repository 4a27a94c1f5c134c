from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...services.candidates import candidates_import
from ._import import run_import


class Command(BaseCommand):
    help = (
        'Import responses made elsewhere from a JSONL file ({"prompt_id" or "messages", "text", "generator"} '
        "a line), all-or-nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="JSONL file")

    def handle(self, *args: Any, **options: Any) -> None:
        result = run_import(options["path"], lambda stream: candidates_import(stream=stream))
        self.stdout.write(f"{result.created} candidates created, {result.existing} already present.")
