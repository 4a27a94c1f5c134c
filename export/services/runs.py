"""The ExportRun lifecycle: create a queued run (and enqueue its task), execute it, fail it.

``ExportRun.status`` changes only in :func:`export_run_execute` (``export_run_create`` makes runs
in their initial ``queued`` state). A run's snapshot is written by
``export.services.snapshot.export_snapshot_write`` into ``PREFLAB_EXPORT_ROOT/<id>/<name>/``.
``export.tasks`` imports this module, so the task is imported lazily, inside the function.
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from export.models import ExportRun
from export.records import ExportDataError
from export.selectors.judgments import export_judgment_queryset
from export.selectors.redteam import REDTEAM_VIEWS
from export.selectors.sessions import export_session_count
from export.services.snapshot import export_snapshot_write
from export.spec import export_spec_clean
from labeling.audit import audit_record
from labeling.errors import ApplicationError
from labeling.models import User

logger = logging.getLogger(__name__)


def export_run_create(
    *,
    created_by: User,
    format: str = "trl",
    filters: Any = None,
    name: str = "preferences",
    aggregation: str = "raw",
    options: Any = None,
    enqueue: bool = True,
) -> ExportRun:
    """Validate the request, create a queued run, and enqueue its task once the transaction commits.

    ``enqueue=False`` only creates the run, for a caller that executes it itself (manage.py export).

    Raises ApplicationError (400, naming ``format``, ``aggregation``, ``name``, ``filters.<key>``
    or ``options.<key>``) for bad input, and (403) when the user may not export; nothing is
    created then.
    """
    if not getattr(created_by, "can_export", False):
        raise ApplicationError("Only researchers and admins may export.", status_code=403)
    spec = export_spec_clean(
        name=name, format=format, aggregation=aggregation, filters=filters, options=options
    )
    export_run = ExportRun.objects.create(
        created_by=created_by,
        format=spec.format,
        aggregation=spec.aggregation,
        name=spec.name,
        filters=spec.filters,
        options=spec.options,
    )
    audit_record(
        "export.create",
        target=export_run,
        actor=created_by,
        changes={"format": spec.format, "aggregation": spec.aggregation, "filters": spec.filters},
    )

    if not enqueue:
        return export_run
    from export.tasks import export_run_task  # the task module imports this one

    run_id = export_run.pk
    transaction.on_commit(lambda: export_run_task.delay(run_id))
    return export_run


def export_run_execute(*, export_run: ExportRun) -> ExportRun:
    """Write the run's snapshot and record the outcome. The only place a run's status changes.

    queued/running -> running -> succeeded, or failed with a readable ``error``. The snapshot is
    ``PREFLAB_EXPORT_ROOT/<id>/<name>/`` (``file_path`` is stored relative to the root); it
    appears only complete, and a failed run leaves none. Progress (``judgments_done`` of
    ``judgments_total``) is saved once per chunk. A finished run (succeeded or failed) is
    immutable: calling this again returns it unchanged. A run found ``running`` (its worker died)
    is written again from the start. Errors in the data or the disk fail the run; any other
    exception fails it too and is re-raised so it is seen.
    """
    if export_run.status in (ExportRun.Status.SUCCEEDED, ExportRun.Status.FAILED):
        return export_run
    relative = Path(str(export_run.pk)) / export_run.name
    folder = Path(settings.PREFLAB_EXPORT_ROOT) / relative
    # A worker killed mid-write leaves its temporary folder behind; the retry sweeps it.
    if folder.parent.exists():
        for stale in folder.parent.glob(".*.part"):
            shutil.rmtree(stale, ignore_errors=True)
    try:
        spec = export_spec_clean(
            name=export_run.name,
            format=export_run.format,
            aggregation=export_run.aggregation,
            filters=export_run.filters,
            options=export_run.options,
        )
        export_run.status = ExportRun.Status.RUNNING
        # Progress counts judgments read, or for the sft view sessions read.
        export_run.judgments_total = (
            export_session_count(filters=spec.filters)
            if spec.format == ExportRun.Format.SFT
            else 0
            if spec.format in REDTEAM_VIEWS or "judgments" not in spec.filters.get("sources", ["judgments"])
            else export_judgment_queryset(filters=spec.filters).count()
        )
        export_run.judgments_done = 0
        export_run.save(update_fields=["status", "judgments_total", "judgments_done"])

        def progress(done: int) -> None:
            ExportRun.objects.filter(pk=export_run.pk).update(judgments_done=done)

        manifest = export_snapshot_write(
            spec=spec,
            folder=folder,
            on_progress=progress,
            created_at=export_run.created_at,
            created_by=export_run.created_by.username if export_run.created_by else None,
        )
    except (ApplicationError, ExportDataError, OSError) as exc:
        message = exc.message if isinstance(exc, ApplicationError) else str(exc)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # Say which disk: the admin frees space on PREFLAB_EXPORT_ROOT, then exports again.
            message = f"the export disk (PREFLAB_EXPORT_ROOT) is full: {message}"
        return _export_run_fail(export_run, message)
    except Exception as exc:
        _export_run_fail(export_run, f"internal error: {type(exc).__name__}: {exc}")
        raise

    export_run.status = ExportRun.Status.SUCCEEDED
    export_run.file_path = relative.as_posix()
    export_run.sha256 = manifest["sha256"]
    export_run.row_count = manifest["rows"]
    export_run.files = manifest["files"]
    export_run.code_version = manifest["code_version"]
    export_run.judgments_done = export_run.judgments_total
    export_run.manifest = manifest
    export_run.error = ""
    export_run.finished_at = timezone.now()
    export_run.save(
        update_fields=[
            "status",
            "file_path",
            "sha256",
            "row_count",
            "files",
            "code_version",
            "judgments_done",
            "manifest",
            "error",
            "finished_at",
        ]
    )
    return export_run


def _export_run_fail(export_run: ExportRun, message: str) -> ExportRun:
    logger.warning("export run %s failed: %s", export_run.pk, message)
    export_run.status = ExportRun.Status.FAILED
    export_run.error = message
    export_run.file_path = ""
    export_run.sha256 = ""
    export_run.row_count = 0
    export_run.files = []
    export_run.finished_at = timezone.now()
    export_run.save(
        update_fields=["status", "error", "file_path", "sha256", "row_count", "files", "finished_at"]
    )
    return export_run
