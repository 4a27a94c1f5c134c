from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...importing import split_tags
from ...models import Prompt
from ...services.preferences import preferences_import
from ._import import add_file_arguments, file_options, run_import


class Command(BaseCommand):
    help = (
        "Import an existing preference dataset (prompt, chosen, rejected a line or row: HH-RLHF, "
        "UltraFeedback binarized, TRL preference sets) as prompts with two responses each, keeping "
        "the original label apart from what raters see; all-or-nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_file_arguments(parser, what="the dataset")
        parser.add_argument(
            "--dataset",
            default="",
            help="the dataset's name, given to the generator of its responses (default: the file's name)",
        )
        parser.add_argument("--collection", default="", help="collection for new prompts")
        parser.add_argument("--tags", default="", help="comma-separated tags added to every prompt")
        parser.add_argument("--source", default=Prompt.Source.IMPORT, choices=Prompt.Source.values)

    def handle(self, *args: Any, **options: Any) -> None:
        result = run_import(
            options["path"],
            lambda: preferences_import(
                **file_options(options),
                dataset=options["dataset"] or None,
                source=options["source"],
                collection=options["collection"],
                default_tags=split_tags(options["tags"]),
            ),
        )
        counts = result.counts
        self.stdout.write(
            f"{result.created} preference pairs created, {result.existing} already present; "
            f"prompts: {counts['prompts']['created']} created, {counts['prompts']['existing']} already present; "
            f"responses: {counts['candidates']['created']} created, {counts['candidates']['existing']} already present."
        )
