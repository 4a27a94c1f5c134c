"""``manage.py dump_preferences PATH``: the whole database into one compressed file with a manifest.

See ``labeling/backup.py`` for what the file holds; ``load_preferences`` restores it into an empty
database. On PostgreSQL the dump reads one consistent snapshot, so the site may keep running.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from labeling import backup


class Command(BaseCommand):
    help = "Dump every table to one zip file (JSON Lines per model, manifest with counts and sha256)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="The file to write (e.g. preflab-2026-11-30.zip).")
        parser.add_argument("--database", default="default", help="The database alias (default: default).")

    def handle(self, *args: Any, **opts: Any) -> None:
        progress = backup.terminal_progress(sys.stderr) if opts["verbosity"] >= 1 else None
        manifest = backup.dump(opts["path"], using=opts["database"], progress=progress)
        rows = sum(entry["count"] for entry in manifest["models"])
        self.stdout.write(f"dumped {rows} rows of {len(manifest['models'])} models to {opts['path']}")
