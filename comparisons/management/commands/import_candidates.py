from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...services.candidates import candidates_import
from ._import import add_file_arguments, file_options, run_import


class Command(BaseCommand):
    help = (
        'Import responses made elsewhere ({"prompt_id" or "messages", "text", "generator"} a line or row) '
        "from JSONL, CSV, Parquet, Arrow or a saved Hugging Face dataset, all-or-nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_file_arguments(parser, what="responses")

    def handle(self, *args: Any, **options: Any) -> None:
        result = run_import(options["path"], lambda: candidates_import(**file_options(options)))
        self.stdout.write(f"{result.created} candidates created, {result.existing} already present.")
