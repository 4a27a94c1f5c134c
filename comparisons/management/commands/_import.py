"""Shared by the import commands: run an import service on a file, turning its errors into CommandError."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from django.core.management.base import CommandError

from labeling.errors import ApplicationError

from ...importing import ImportFailed, iter_chunks
from ...services.common import ImportResult


def run_import(path: str, service: Callable[[Iterable[bytes]], ImportResult]) -> ImportResult:
    """Open ``path`` and feed it to ``service``; CommandError names the file, line and field."""
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file")
    with file.open("rb") as handle:
        try:
            return service(iter_chunks(handle))
        except ImportFailed as exc:
            lines = [f"{path}: {exc.message}; nothing was imported."]
            if len(exc.errors) > 1:
                lines += [f"  {error}" for error in exc.errors]
            raise CommandError("\n".join(lines))
        except ApplicationError as exc:
            raise CommandError(f"{path}: {exc.message}")
