"""manage.py export_preferences: write the TRL preference rows to a file or stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from export.records import ExportDataError
from export.services.preferences import export_preferences_write, export_preferences_write_file
from labeling.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Write judgments as TRL preference rows (conversational, explicit prompt, margin), one JSON "
        "object per line, ordered by comparison then judgment id. K-way rankings are expanded to pairs "
        "sharing a ranking_id; ties are left out and counted on stderr. For splits, Parquet, other "
        "views and a dataset card use `manage.py export`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", default="-", help="Output file; '-' (default) writes to stdout.")
        parser.add_argument(
            "--queue", dest="queues", type=int, action="append", metavar="ID", help="Queue id (repeatable)."
        )
        parser.add_argument("--since", help="Only judgments made at or after this ISO 8601 date/datetime.")
        parser.add_argument("--until", help="Only judgments made before this ISO 8601 date/datetime.")
        parser.add_argument("--name", default="preferences", help="Dataset name (keys the rater pseudonyms).")

    def handle(self, *args: Any, **options: Any) -> None:
        filters = {key: options[key] for key in ("queues", "since", "until") if options[key] is not None}
        out = options["out"]
        try:
            if out == "-":
                # Bytes straight to stdout's buffer: the same bytes as the file would hold.
                manifest = export_preferences_write(
                    out=sys.stdout.buffer, filters=filters, name=options["name"]
                )
            else:
                manifest = export_preferences_write_file(
                    path=Path(out), filters=filters, name=options["name"]
                )
        except ApplicationError as exc:
            option = (exc.field or "").removeprefix("filters.")
            option = "queue" if option == "queues" else option
            raise CommandError(f"--{option}: {exc.message}" if option else exc.message)
        except ExportDataError as exc:
            raise CommandError(f"cannot export: {exc}")
        except OSError as exc:
            raise CommandError(f"--out {out}: {exc.strerror or exc}")
        skipped = manifest["skipped"]
        self.stderr.write(
            f"{manifest['rows']} rows written to {'stdout' if out == '-' else out}; "
            f"left out: {skipped['ties']} ties; sha256 {manifest['sha256']}"
        )
