"""Reads of export runs: the list, one run, and a finished run's folder and files on disk.

A run's files are served only once it has succeeded (Conflict otherwise), and only from under
PREFLAB_EXPORT_ROOT; files no longer on disk answer 410.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from export.models import ExportRun
from labeling.errors import ApplicationError, Conflict


def export_run_list() -> QuerySet[ExportRun]:
    """All runs, newest first. Researchers and admins see every run (exports are shared snapshots)."""
    return ExportRun.objects.select_related("created_by").order_by("-id")


def export_run_get(*, export_run_id: int) -> ExportRun:
    """One run, or 404."""
    return get_object_or_404(ExportRun.objects.select_related("created_by"), pk=export_run_id)


def export_run_folder(*, export_run: ExportRun) -> Path:
    """The finished run's snapshot folder. Conflict (409) while the run is not finished; 410 if gone."""
    if export_run.status != ExportRun.Status.SUCCEEDED:
        raise Conflict(
            f"Export {export_run.pk} is {export_run.status}; its files can be downloaded once it has succeeded.",
            field="status",
        )
    root = Path(settings.PREFLAB_EXPORT_ROOT).resolve()
    path = (root / export_run.file_path).resolve()
    # file_path is written by export_run_execute, but never serve anything outside the root.
    if not path.is_relative_to(root) or not path.is_dir():
        raise ApplicationError(
            f"The files of export {export_run.pk} are no longer on disk; create a new export.",
            status_code=410,
        )
    return path


def export_run_file(*, export_run: ExportRun, relative: str) -> Path:
    """One file of a finished run, by its path in ``files`` (404 naming the file otherwise)."""
    folder = export_run_folder(export_run=export_run)
    known = {f["path"] for f in export_run.files}
    if relative not in known:
        raise ApplicationError(
            f"Export {export_run.pk} has no file {relative!r}; it has: {', '.join(sorted(known))}.",
            field="file",
            status_code=404,
        )
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise ApplicationError(f"The file {relative!r} of export {export_run.pk} is gone.", status_code=410)
    return path
