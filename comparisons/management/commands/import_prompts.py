from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...importing import split_tags
from ...models import Prompt
from ...services.prompts import prompts_import
from ._import import run_import


class Command(BaseCommand):
    help = 'Import prompts from a JSONL file ({"id"?, "messages": [...], "tags"?} a line), all-or-nothing.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="JSONL file")
        parser.add_argument("--collection", default="", help="collection for new prompts")
        parser.add_argument("--tags", default="", help="comma-separated tags added to every prompt")
        parser.add_argument("--source", default=Prompt.Source.IMPORT, choices=Prompt.Source.values)

    def handle(self, *args: Any, **options: Any) -> None:
        result = run_import(
            options["path"],
            lambda stream: prompts_import(
                stream=stream,
                source=options["source"],
                collection=options["collection"],
                default_tags=split_tags(options["tags"]),
            ),
        )
        self.stdout.write(f"{result.created} prompts created, {result.existing} already present.")
