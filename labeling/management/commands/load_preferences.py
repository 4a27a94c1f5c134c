"""``manage.py load_preferences PATH``: restore a ``dump_preferences`` file into an empty database.

All or nothing, after checking the file's sha256 sums and that the database is empty and at the
dump's migrations (``labeling/backup.py``). Exits with a message naming the problem otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling import backup


class Command(BaseCommand):
    help = "Load a dump_preferences file into an empty, migrated database (all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="A file written by manage.py dump_preferences.")
        parser.add_argument("--database", default="default", help="The database alias (default: default).")

    def handle(self, *args: Any, **opts: Any) -> None:
        progress = backup.terminal_progress(sys.stderr) if opts["verbosity"] >= 1 else None
        try:
            report = backup.load(opts["path"], using=opts["database"], progress=progress)
        except backup.BackupError as exc:
            raise CommandError(f"load_preferences: {exc}") from None
        self.stdout.write(
            f"loaded {report.rows} rows of {len(report.manifest['models'])} models "
            f"(dumped {report.manifest['created_at']})"
        )
