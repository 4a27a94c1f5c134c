"""Imports through the API and the page: run at once when small, as an ImportJob when big.

``import_start`` is the one door both use. A file up to ``PREFLAB_IMPORT_ASYNC_BYTES`` (default
8 MB; a quarter of it for a compressed file: gzip, Parquet, zip) is imported within the request
(the API answers 201); a bigger one, or one whose size the
request does not say and turns out bigger, is saved under the imports folder and imported by a
worker (``comparisons.tasks.import_job_task``, on the ``default`` queue; the API answers 202 with
the job to watch). Both run the same service, so the checks and the all-or-nothing write are the
same.

``ImportJob.status`` changes only in this module:
queued (file saved, task enqueued) -> running (``import_job_execute`` reads and checks the lines,
``lines_done`` of ``lines_total``, then writes them in one transaction) -> succeeded (``result``
holds the counts) or failed (nothing written; ``error``, ``errors`` and ``error_count`` say why).
A finished job is immutable; a job found running (its worker died) is run again from the start.
The file is removed once the job is finished. The imports folder is ``imports`` next to the
exports folder (``PREFLAB_EXPORT_ROOT``), which web processes and workers share.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from comparisons import importing
from comparisons.importing import ImportFailed, InvalidField, file_error, split_tags, validate_tags
from comparisons.models import ImportJob
from comparisons.readers import RowReader, columns_clean, format_clean
from comparisons.services.candidates import candidates_import
from comparisons.services.common import ImportResult
from comparisons.services.preferences import dataset_name_clean, preferences_import
from comparisons.services.prompts import _clean_collection, _clean_source, prompts_import
from labeling.errors import ApplicationError

logger = logging.getLogger(__name__)

#: Files up to this size are imported within the request; bigger ones by a worker.
DEFAULT_ASYNC_BYTES = 8 * 1024 * 1024
#: A compressed file (gzip, Parquet, a zip) counts this many times its size against that threshold.
COMPRESSED_WEIGHT = 4
_SERVICES: dict[str, Callable[..., ImportResult]] = {
    ImportJob.Kind.PROMPTS: prompts_import,
    ImportJob.Kind.CANDIDATES: candidates_import,
    ImportJob.Kind.PREFERENCES: preferences_import,
}
#: The options each kind of import takes, besides the file.
OPTIONS: dict[str, tuple[str, ...]] = {
    ImportJob.Kind.PROMPTS: ("format", "columns", "split", "source", "collection", "default_tags"),
    ImportJob.Kind.CANDIDATES: ("format", "columns", "split"),
    ImportJob.Kind.PREFERENCES: (
        "format",
        "columns",
        "split",
        "dataset",
        "source",
        "collection",
        "default_tags",
    ),
}


def async_bytes() -> int:
    return int(getattr(settings, "PREFLAB_IMPORT_ASYNC_BYTES", DEFAULT_ASYNC_BYTES))


def imports_root() -> Path:
    """Where uploaded files wait for their job: ``imports/`` next to the exports folder."""
    return Path(settings.PREFLAB_EXPORT_ROOT).parent / "imports"


def import_options_clean(
    *, kind: str, file_name: str = "", media_type: str = "", **given: Any
) -> dict[str, Any]:
    """The options of an import of ``kind``, checked, as the service's keyword arguments.

    ``format`` defaults to what the file's name or the body's media type says; ``tags`` may be
    comma-separated text; ``dataset`` (preferences) defaults to the file's name. Raises
    InvalidField naming the option.
    """
    if kind not in _SERVICES:
        raise InvalidField("kind", f"must be one of {', '.join(_SERVICES)}")
    if isinstance(given.get("default_tags"), str):
        given["default_tags"] = split_tags(given["default_tags"])
    options: dict[str, Any] = {
        "format": format_clean(given.get("format"), name=file_name, media_type=media_type),
        "columns": columns_clean(given.get("columns"), kind=kind),
        "split": (given.get("split") or "").strip() or None,
    }
    if options["split"] is not None and options["format"] != "dataset":
        raise InvalidField("split", "only a saved dataset (format dataset) has splits")
    if "source" in OPTIONS[kind]:
        options["source"] = _clean_source(given.get("source") or "import")
        options["collection"] = _clean_collection(given.get("collection"))
        options["default_tags"] = validate_tags(given.get("default_tags") or [])
    if kind == ImportJob.Kind.PREFERENCES:
        options["dataset"] = dataset_name_clean(given.get("dataset"), file_name=file_name)
    return options


def import_run(*, kind: str, data: Any, options: dict[str, Any], progress: Any = None) -> ImportResult:
    """Run the import of ``kind`` on ``data`` (a path, an uploaded or open file) here and now."""
    return _SERVICES[kind](file=data, progress=progress, **options)


def import_start(
    *,
    kind: str,
    upload: Any,
    created_by: Any,
    options: dict[str, Any],
    file_name: str = "",
    size: int | None = None,
    media_type: str = "",
) -> ImportResult | ImportJob:
    """Import ``upload`` (an uploaded file, or a request body) now, or start a job for it.

    ``size`` is the upload's size when the request says it. Up to ``PREFLAB_IMPORT_ASYNC_BYTES``:
    imported here (ImportResult; ImportFailed when refused). Bigger, or unknown and bigger once
    saved: the file is saved under the imports folder (refused past the 50 MB limit) and a
    queued ImportJob returned, its task enqueued when the transaction commits. The options are
    checked first, so a job is only made for an import that can run.
    """
    options = import_options_clean(kind=kind, file_name=file_name, media_type=media_type, **options)
    # A compressed file holds several times its size in text, and takes that much longer.
    compressed = options["format"] in ("parquet", "dataset") or file_name.lower().endswith(".gz")
    threshold = async_bytes() // (COMPRESSED_WEIGHT if compressed else 1)
    if size is not None and size <= threshold:
        return import_run(kind=kind, data=upload, options=options)
    folder = imports_root() / uuid.uuid4().hex
    path = folder / _stored_name(file_name, options["format"])
    keep = False
    try:
        written = _save(upload, path)
        if written <= threshold:  # a body of unknown length that was small after all
            return import_run(kind=kind, data=path, options=options)
        keep = True
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    import_job = ImportJob.objects.create(
        kind=kind,
        format=options["format"],
        options=options,
        file_name=(file_name or path.name)[:255],
        file_path=path.relative_to(imports_root()).as_posix(),
        file_bytes=written,
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    from comparisons.tasks import import_job_task  # the task module imports this one

    job_id = import_job.pk
    transaction.on_commit(lambda: import_job_task.delay(job_id))
    return import_job


def _stored_name(file_name: str, format: str) -> str:
    """A safe, short name for the saved upload, keeping its extensions (``.jsonl.gz``)."""
    try:
        name = get_valid_filename(PurePosixPath(file_name.replace("\\", "/")).name) if file_name else ""
    except SuspiciousFileOperation:  # "..", or nothing usable left
        name = ""
    if len(name) > 100:
        name = name[:60] + name[-40:]
    return name or f"upload.{format}"


def _save(upload: Any, path: Path) -> int:
    """Stream ``upload`` to ``path``; its size. ImportFailed past MAX_FILE_BYTES (nothing kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("wb") as out:
        for chunk in importing.iter_chunks(upload):
            written += len(chunk)
            if written > importing.MAX_FILE_BYTES:
                raise file_error(f"larger than the {importing.size_text(importing.MAX_FILE_BYTES)} limit")
            out.write(chunk)
    return written


class _JobProgress:
    """Records a running job's progress: lines read so far, then every line read (the writing)."""

    def __init__(self, import_job: ImportJob) -> None:
        self.import_job = import_job

    def lines_read(self, done: int) -> None:
        ImportJob.objects.filter(pk=self.import_job.pk).update(lines_done=done)

    def writing(self) -> None:
        total = self.import_job.lines_total
        if total is None:  # the total could not be told beforehand: it is known now
            total = ImportJob.objects.values_list("lines_done", flat=True).get(pk=self.import_job.pk)
        ImportJob.objects.filter(pk=self.import_job.pk).update(lines_done=total, lines_total=total)


def import_job_execute(*, import_job: ImportJob) -> ImportJob:
    """Run a queued (or interrupted) job and record the outcome. The only place its status changes.

    A finished job is returned unchanged. The outcome is written only if no other run of the same
    job finished first (a redelivered task), so a success is never overwritten.
    """
    if import_job.finished:
        return import_job
    path = imports_root() / import_job.file_path
    import_job.status = ImportJob.Status.RUNNING
    import_job.started_at = timezone.now()
    import_job.lines_done = 0
    try:
        if not path.is_file():
            raise file_error("the uploaded file is gone (it was removed before the job ran)")
        options = dict(import_job.options)
        import_job.lines_total = RowReader(
            path,
            kind=import_job.kind,
            format=options["format"],
            columns=options.get("columns"),
            split=options.get("split"),
        ).total()
        import_job.save(update_fields=["status", "started_at", "lines_done", "lines_total"])
        result = import_run(
            kind=import_job.kind, data=path, options=options, progress=_JobProgress(import_job)
        )
    except ImportFailed as exc:
        return _finish_failed(
            import_job, exc.message, errors=[e.as_dict() for e in exc.errors], count=exc.error_count
        )
    except ApplicationError as exc:
        return _finish_failed(import_job, exc.message, errors=[], count=1)
    except Exception as exc:
        _finish_failed(import_job, f"internal error: {type(exc).__name__}: {exc}", errors=[], count=1)
        raise
    done = ImportJob.objects.values_list("lines_done", flat=True).get(pk=import_job.pk)
    return _finish(
        import_job,
        ImportJob.Status.SUCCEEDED,
        result=result.counts,
        lines_done=import_job.lines_total or done,
    )


def _finish_failed(
    import_job: ImportJob, message: str, *, errors: list[dict[str, Any]], count: int
) -> ImportJob:
    logger.warning("import job %s failed: %s", import_job.pk, message)
    return _finish(import_job, ImportJob.Status.FAILED, error=message, errors=errors, error_count=count)


def _finish(import_job: ImportJob, status: str, **fields: Any) -> ImportJob:
    """Record the outcome, unless another run of the job recorded one first; remove the file."""
    finished = [ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED]
    ImportJob.objects.filter(pk=import_job.pk).exclude(status__in=finished).update(
        status=status, finished_at=timezone.now(), **fields
    )
    shutil.rmtree((imports_root() / import_job.file_path).parent, ignore_errors=True)
    import_job.refresh_from_db()
    return import_job


def import_job_resume_all() -> int:
    """Enqueue again every job left running by a worker that died; return how many.

    For kombu's filesystem broker (the one-machine default), which loses a message taken by a
    worker that dies; Redis and RabbitMQ redeliver it themselves (``acks_late``). A queued job's
    message is still in the broker, so it is left alone.
    """
    from comparisons.tasks import import_job_task

    ids = list(ImportJob.objects.filter(status=ImportJob.Status.RUNNING).values_list("pk", flat=True))
    for job_id in ids:
        transaction.on_commit(lambda job_id=job_id: import_job_task.delay(job_id))  # type: ignore[misc]
    return len(ids)
