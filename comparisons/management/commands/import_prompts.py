from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...importing import split_tags
from ...models import Prompt
from ...services.prompts import prompts_import
from ._import import add_file_arguments, file_options, run_import


class Command(BaseCommand):
    help = (
        'Import prompts ({"id"?, "messages": [...], "tags"?} or {"prompt": "text"} a line or row) from '
        "JSONL, CSV, Parquet, Arrow or a saved Hugging Face dataset, all-or-nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_file_arguments(parser, what="prompts")
        parser.add_argument("--collection", default="", help="collection for new prompts")
        parser.add_argument("--tags", default="", help="comma-separated tags added to every prompt")
        parser.add_argument("--source", default=Prompt.Source.IMPORT, choices=Prompt.Source.values)

    def handle(self, *args: Any, **options: Any) -> None:
        result = run_import(
            options["path"],
            lambda: prompts_import(
                **file_options(options),
                source=options["source"],
                collection=options["collection"],
                default_tags=split_tags(options["tags"]),
            ),
        )
        self.stdout.write(f"{result.created} prompts created, {result.existing} already present.")
