"""Shared by the import commands: their file options, and running an import service on a path,
turning its errors into CommandError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from labeling.errors import ApplicationError

from ...importing import ImportFailed
from ...readers import FORMATS
from ...services.common import ImportResult


def add_file_arguments(parser: CommandParser, *, what: str) -> None:
    """The path and the options every import command takes: --format, --columns, --split."""
    parser.add_argument(
        "path",
        help=f"{what}: a .jsonl or .csv file (also gzipped), .parquet, .arrow, a folder saved by "
        "Hugging Face datasets, or a zip of one",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="the file's format (default: from its name; a folder is a saved dataset; else jsonl)",
    )
    parser.add_argument(
        "--columns",
        default="",
        help="which column holds which field, e.g. 'prompt=question,text=answer' (or a JSON object)",
    )
    parser.add_argument("--split", default="", help="the split of a saved DatasetDict to import")


def file_options(options: dict[str, Any]) -> dict[str, Any]:
    """The service's keyword arguments for the file options; a folder is read as a saved dataset."""
    path = Path(options["path"])
    return {
        "file": path,
        "format": options["format"] or ("dataset" if path.is_dir() else None),
        "columns": options["columns"] or None,
        "split": options["split"] or None,
    }


def run_import(path: str, service: Callable[[], ImportResult]) -> ImportResult:
    """Run ``service`` (an import of ``path``); CommandError names the file, line and field."""
    if not Path(path).exists():
        raise CommandError(f"{path}: no such file or folder")
    try:
        return service()
    except ImportFailed as exc:
        lines = [f"{path}: {exc.message}; nothing was imported."]
        if len(exc.errors) > 1:
            lines += [f"  {error}" for error in exc.errors]
        raise CommandError("\n".join(lines))
    except ApplicationError as exc:
        raise CommandError(f"{path}: {exc.message}")
