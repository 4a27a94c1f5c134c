"""Writes for exports: validate a request, create a run, write its file.

``ExportRun.status`` changes only in :func:`export_run_execute` (``export_run_create`` makes runs
in their initial ``queued`` state).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import tempfile
import tomllib
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from export.models import ExportRun
from export.selectors import export_judgment_queryset
from export.writers import (
    MARGIN_MAPPING_DOC,
    RATER_ID_DOC,
    TRL_COLUMNS,
    VIEW,
    ExportDataError,
    TrlPreferenceWriter,
)
from labeling.apis_common import ApplicationError
from labeling.models import Queue, User

logger = logging.getLogger(__name__)

SUPPORTED_FILTERS = ("queues", "since", "until")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Rows fetched per chunk: bounds memory and keeps the prefetch queries per chunk, not per row.
CHUNK_SIZE = 500


# --- validation ---------------------------------------------------------------------------------


def export_filters_clean(*, filters: Any) -> dict[str, Any]:
    """Validate export filters and return their normalized, JSON-ready form.

    Supported: ``queues`` (list of existing queue ids), ``since`` (inclusive) and ``until``
    (exclusive), ISO 8601 datetimes or dates on the judgment's creation time; a datetime without
    an offset is read in the site time zone. The result holds only the given keys, queue ids
    sorted and unique, datetimes as UTC ISO strings, so equal filters store and compare equal.

    Raises ApplicationError (400) whose ``field`` is ``filters.<key>`` for the first bad filter.
    """
    if filters is None:
        return {}
    if not isinstance(filters, dict):
        raise ApplicationError('filters must be an object, e.g. {"queues": [1]}.', field="filters")
    for key in filters:
        if key not in SUPPORTED_FILTERS:
            raise ApplicationError(
                f"Unknown filter '{key}'. Supported filters: {', '.join(SUPPORTED_FILTERS)}.",
                field=f"filters.{key}",
            )
    clean: dict[str, Any] = {}
    if filters.get("queues") is not None:
        clean["queues"] = _clean_queues(filters["queues"])
    for key in ("since", "until"):
        if filters.get(key) is not None:
            clean[key] = _clean_datetime(filters[key], key=key).isoformat()
    if "since" in clean and "until" in clean and clean["since"] >= clean["until"]:
        raise ApplicationError(
            f"Filter 'until' ({clean['until']}) must be later than 'since' ({clean['since']}).",
            field="filters.until",
        )
    return clean


def _clean_queues(value: Any) -> list[int]:
    values = value if isinstance(value, list) else [value]
    ids: set[int] = set()
    for v in values:
        # bool is an int subclass; True is not a queue id.
        if isinstance(v, bool) or not isinstance(v, int | str) or not str(v).strip().isdigit():
            raise ApplicationError(
                f"Filter 'queues' takes a list of queue ids; {v!r} is not a queue id.", field="filters.queues"
            )
        ids.add(int(v))
    if not ids:
        raise ApplicationError(
            "Filter 'queues' is empty; leave it out to export every queue.", field="filters.queues"
        )
    found = set(Queue.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = sorted(ids - found)
    if missing:
        raise ApplicationError(
            f"Filter 'queues': no queue with id {', '.join(map(str, missing))}.", field="filters.queues"
        )
    return sorted(ids)


def _clean_datetime(value: Any, *, key: str) -> datetime:
    parsed: datetime | None = None
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
            if parsed is None:
                day = parse_date(value.strip())
                parsed = datetime.combine(day, time.min) if day else None
        except ValueError:
            parsed = None
    if parsed is None:
        raise ApplicationError(
            f"Filter '{key}': {value!r} is not an ISO 8601 date or datetime (e.g. 2025-01-31T12:00:00Z).",
            field=f"filters.{key}",
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed.astimezone(UTC)


def export_name_clean(*, name: Any) -> str:
    """A dataset name that is also a safe file name: letters, digits, '.', '_', '-'; at most 100."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ApplicationError(
            f"Name {name!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit.",
            field="name",
        )
    return name


def _format_clean(fmt: Any) -> str:
    if fmt not in ExportRun.Format.values:
        raise ApplicationError(
            f"Unknown format {fmt!r}. Supported formats: {', '.join(ExportRun.Format.values)}.",
            field="format",
        )
    return str(fmt)


# --- writing ------------------------------------------------------------------------------------


def code_version() -> str:
    """The preflab package version: installed metadata, else pyproject.toml, else 'unknown'."""
    try:
        return importlib.metadata.version("preflab")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def export_preferences_write(
    *, out: BinaryIO, filters: Any, name: str, created_at: datetime | None = None
) -> dict[str, Any]:
    """Write the TRL preference rows for ``filters`` to the binary stream ``out``; return the manifest.

    The same filters over the same data give byte-identical output (rows ordered by judgment id,
    one fixed serialization). Filters and name are validated first (ApplicationError); stored data
    that cannot be written raises ExportDataError naming the judgment, possibly after some rows
    were written to ``out``: callers that need all-or-nothing write to a temporary file
    (see :func:`export_preferences_write_file`).
    """
    clean_filters = export_filters_clean(filters=filters)
    name = export_name_clean(name=name)
    writer = TrlPreferenceWriter(out, name=name)
    for judgment in export_judgment_queryset(filters=clean_filters).iterator(chunk_size=CHUNK_SIZE):
        writer.write(judgment)
    out.flush()
    return {
        "format": ExportRun.Format.TRL.value,
        "view": VIEW,
        "name": name,
        "columns": list(TRL_COLUMNS),
        "rows": writer.stats.rows,
        "skipped": {"ties": writer.stats.ties, "rankings": writer.stats.rankings},
        "rankings": "K-way ranking judgments are not expanded to pairs yet; they are counted in skipped.rankings",
        "margin_mapping": MARGIN_MAPPING_DOC,
        "rater_id": RATER_ID_DOC,
        "filters": clean_filters,
        "sha256": writer.sha256,
        "created_at": (created_at or timezone.now()).astimezone(UTC).isoformat(),
        "code_version": code_version(),
    }


def export_preferences_write_file(
    *, path: Path, filters: Any, name: str, created_at: datetime | None = None
) -> dict[str, Any]:
    """Like :func:`export_preferences_write`, into ``path``, all or nothing.

    Rows go to a hidden temporary file in the same folder, which is synced and renamed over
    ``path`` only when every row was written; on any error the temporary file is removed and
    ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            manifest = export_preferences_write(out=fh, filters=filters, name=name, created_at=created_at)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


# --- runs ---------------------------------------------------------------------------------------


def export_run_create(
    *, created_by: User, format: str = "trl", filters: Any = None, name: str = "preferences"
) -> ExportRun:
    """Validate the request, create a queued run, and enqueue its task once the transaction commits.

    Raises ApplicationError (400, naming ``format``, ``name`` or ``filters.<key>``) for bad input,
    and (403) when the user may not export; nothing is created then.
    """
    if not getattr(created_by, "can_export", False):
        raise ApplicationError("Only researchers and admins may export.", status_code=403)
    fmt = _format_clean(format)
    clean_name = export_name_clean(name=name)
    clean_filters = export_filters_clean(filters=filters)
    export_run = ExportRun.objects.create(
        created_by=created_by, format=fmt, name=clean_name, filters=clean_filters
    )

    from export.tasks import export_run_task  # the task module imports this one

    run_id = export_run.pk
    transaction.on_commit(lambda: export_run_task.delay(run_id))
    return export_run


def export_run_execute(*, export_run: ExportRun) -> ExportRun:
    """Write the run's file and record the outcome. The only place a run's status changes.

    queued/running -> running -> succeeded, or failed with a readable ``error``. The file is
    ``PREFLAB_EXPORT_ROOT/<id>/<name>.jsonl`` (``file_path`` is stored relative to the root);
    it appears only complete, and a failed run leaves no file. A finished run (succeeded or
    failed) is immutable: calling this again returns it unchanged. A run found ``running`` (its
    worker died) is written again from the start. Errors in the data or the disk fail the run;
    any other exception fails it too and is re-raised so it is seen.
    """
    if export_run.status in (ExportRun.Status.SUCCEEDED, ExportRun.Status.FAILED):
        return export_run
    export_run.status = ExportRun.Status.RUNNING
    export_run.save(update_fields=["status"])

    relative = Path(str(export_run.pk)) / f"{export_run.name}.jsonl"
    path = Path(settings.PREFLAB_EXPORT_ROOT) / relative
    # A worker killed mid-write leaves its temporary file behind; the retry sweeps it.
    for stale in path.parent.glob(".*.part"):
        stale.unlink(missing_ok=True)
    try:
        manifest = export_preferences_write_file(
            path=path,
            filters=export_run.filters,
            name=export_run.name,
            created_at=export_run.created_at,
        )
    except (ApplicationError, ExportDataError, OSError) as exc:
        message = exc.message if isinstance(exc, ApplicationError) else str(exc)
        return _export_run_fail(export_run, message)
    except Exception as exc:
        _export_run_fail(export_run, f"internal error: {type(exc).__name__}: {exc}")
        raise

    export_run.status = ExportRun.Status.SUCCEEDED
    export_run.file_path = relative.as_posix()
    export_run.sha256 = manifest["sha256"]
    export_run.row_count = manifest["rows"]
    export_run.manifest = manifest
    export_run.error = ""
    export_run.finished_at = timezone.now()
    export_run.save(
        update_fields=["status", "file_path", "sha256", "row_count", "manifest", "error", "finished_at"]
    )
    return export_run


def _export_run_fail(export_run: ExportRun, message: str) -> ExportRun:
    logger.warning("export run %s failed: %s", export_run.pk, message)
    export_run.status = ExportRun.Status.FAILED
    export_run.error = message
    export_run.file_path = ""
    export_run.sha256 = ""
    export_run.row_count = 0
    export_run.finished_at = timezone.now()
    export_run.save(update_fields=["status", "error", "file_path", "sha256", "row_count", "finished_at"])
    return export_run
