"""Writes for exports: validate a request, create a run, write its snapshot folder.

``ExportRun.status`` changes only in :func:`export_run_execute` (``export_run_create`` makes runs
in their initial ``queued`` state).

A snapshot is a folder ``<name>/`` holding ``README.md`` (the dataset card) and
``data/<split>.jsonl[.gz]`` / ``data/<split>.parquet``. It appears complete or not at all: it is
written under a hidden temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from export.card import dataset_card
from export.columnar import columnar_write
from export.formats import FULL_RECORD_VIEWS, MARGIN_MAPPING_DOC, VIEWS, NativeView, PairView, View
from export.models import ExportRun
from export.records import ExportDataError, PromptInfo
from export.selectors import (
    GroupStats,
    export_judgment_queryset,
    export_likert_keys,
    export_queue_names,
    export_record_groups,
    export_rubrics,
)
from export.spec import ExportSpec, export_filters_clean, export_name_clean, export_spec_clean
from export.splits import SPLIT_DOC, prompt_split
from export.writers import RATER_ID_DOC, JsonlStream, Pseudonyms, SnapshotWriter, file_sha256
from labeling.errors import ApplicationError
from labeling.models import User

logger = logging.getLogger(__name__)

__all__ = [
    "ExportDataError",
    "code_version",
    "export_filters_clean",
    "export_name_clean",
    "export_preferences_write",
    "export_preferences_write_file",
    "export_run_create",
    "export_run_execute",
    "export_snapshot_write",
]


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


def _build_view(spec: ExportSpec, pseudonyms: Pseudonyms) -> View:
    kwargs: dict[str, Any] = {
        "aggregation": spec.aggregation,
        "options": spec.options,
        "pseudonym": pseudonyms,
        "queue_names": export_queue_names() if spec.format == "native" else {},
    }
    if spec.format == "ratings":
        kwargs["likert_keys"] = export_likert_keys(filters=spec.filters)
    if spec.format == "native":
        kinds: dict[int, dict[str, str]] = {}
        for rubric in export_rubrics(rubric_ids=_rubric_ids(spec)):
            kinds[rubric.pk] = {c.key: c.kind for c in rubric.criteria.all()}
            kinds[rubric.pk]["__version__"] = rubric.version  # type: ignore[assignment]
        return NativeView(rubric_kinds=kinds, **kwargs)
    return VIEWS[spec.format](**kwargs)


def _rubric_ids(spec: ExportSpec) -> set[int]:
    qs = export_judgment_queryset(filters=spec.filters).order_by().values_list("rubric_id", flat=True)
    return set(qs.distinct())


def _skipped(view: View, stats: GroupStats) -> dict[str, int]:
    skipped = dict(sorted(view.stats.items()))
    skipped.setdefault("ties", 0)
    skipped["comparisons_below_min_judgments"] = stats.dropped_min_judgments
    skipped["comparisons_below_min_agreement"] = stats.dropped_min_agreement
    skipped["judgments_in_dropped_comparisons"] = stats.judgments_dropped
    return skipped


def _facts(view: View, stats: GroupStats, pseudonyms: Pseudonyms) -> dict[str, Any]:
    return {
        "judgments": stats.judgments,
        "comparisons": stats.comparisons,
        "raters": len(stats.rater_ids),
        "agreement": {"mean": stats.mean_agreement, "comparisons": stats.agreement_comparisons},
        "skipped": _skipped(view, stats),
        "code_version": code_version(),
    }


def export_snapshot_write(
    *,
    spec: ExportSpec,
    folder: Path,
    on_progress: Callable[[int], None] | None = None,
    created_at: datetime | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Write the snapshot for a validated spec into ``folder`` (replaced if it exists); return the manifest.

    All or nothing: files go to a hidden sibling folder renamed over ``folder`` only when every
    row and the card are written; on any error it is removed and ``folder`` is left as it was.
    Same spec over the same data gives byte-identical files (and the same ``sha256``).
    ``on_progress(n)`` is called with the judgments read so far, once per chunk.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".part"))
    try:
        manifest = _write_snapshot(spec, tmp, on_progress)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["created_at"] = (created_at or timezone.now()).astimezone(UTC).isoformat()
    manifest["created_by"] = created_by
    return manifest


def _write_snapshot(
    spec: ExportSpec, folder: Path, on_progress: Callable[[int], None] | None
) -> dict[str, Any]:
    pseudonyms = Pseudonyms(spec.name)
    view = _build_view(spec, pseudonyms)
    stats = GroupStats()
    full = spec.format in FULL_RECORD_VIEWS

    def split_of(prompt: PromptInfo) -> str:
        if not prompt.split:
            prompt.split = prompt_split(
                name=spec.name, content_hash=prompt.content_hash, source=prompt.source, options=spec.options
            )
        return prompt.split

    writer = SnapshotWriter(
        folder, schema=view.schema, kinds=spec.options["files"], gzip_jsonl=spec.options["gzip"]
    )
    try:
        if isinstance(view, PairView) and view.columnar:
            # The same rows, built a column at a time (see export.columnar).
            columnar_write(
                view=view,
                filters=spec.filters,
                writer=writer,
                stats=stats,
                split_of=split_of,
                on_chunk=on_progress,
                full=full,
            )
        else:
            groups = export_record_groups(filters=spec.filters, full=full, on_chunk=on_progress, stats=stats)
            for prompt, row in view.rows(groups):
                writer.write(split_of(prompt), row)
        files = writer.close()
    except BaseException:
        writer.abort()
        raise
    facts = _facts(view, stats, pseudonyms)
    card = dataset_card(
        name=spec.name,
        view=view,
        spec=spec,
        files=files,
        facts=facts,
        rubrics=export_rubrics(rubric_ids=stats.rubric_ids),
    )
    card_path = folder / "README.md"
    card_path.write_text(card, encoding="utf-8")
    all_files = sorted(
        [
            *files,
            {
                "path": "README.md",
                "split": None,
                "kind": "card",
                "rows": None,
                "bytes": card_path.stat().st_size,
                "sha256": file_sha256(card_path),
            },
        ],
        key=lambda f: f["path"],
    )
    splits: dict[str, int] = {}
    for f in files:
        splits[f["split"]] = f["rows"]
    listing = "".join(f"{f['sha256']}  {f['path']}\n" for f in all_files)
    return {
        "format": spec.format,
        "view": view.title,
        "description": view.description,
        "aggregation": spec.aggregation,
        "adjudication": "not available: Preflab has no adjudication step yet",
        "name": spec.name,
        "columns": view.columns,
        "rows": sum(splits.values()),
        "splits": splits,
        "files": all_files,
        "skipped": facts["skipped"],
        "judgments": facts["judgments"],
        "comparisons": facts["comparisons"],
        "raters": facts["raters"],
        "agreement": facts["agreement"],
        "filters": spec.filters,
        "options": spec.options,
        "margin_mapping": MARGIN_MAPPING_DOC,
        "rater_id": RATER_ID_DOC,
        "split_rule": SPLIT_DOC,
        "paused_raters": "exclude_paused_raters leaves out users with is_active = false",
        "sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest(),
        "sha256_of": "the lines '<sha256>  <path>\\n' of every file, sorted by path (sha256sum -c format)",
        "code_version": facts["code_version"],
    }


# --- the single-stream TRL export (manage.py export_preferences) ---------------------------------


def export_preferences_write(
    *, out: BinaryIO, filters: Any, name: str, created_at: datetime | None = None
) -> dict[str, Any]:
    """Write the TRL preference rows (raw, no splits) to the binary stream ``out``; return the manifest.

    Rows are ordered by comparison, then judgment id; K-way rankings are expanded to pairs
    (sharing a ``ranking_id``); ties are left out and counted. Filters and name are validated
    first (ApplicationError); stored data that cannot be written raises ExportDataError naming the
    judgment, possibly after some rows were written to ``out``: callers that need all-or-nothing
    write to a temporary file (see :func:`export_preferences_write_file`).
    """
    spec = export_spec_clean(name=name, filters=filters)
    pseudonyms = Pseudonyms(spec.name)
    view = _build_view(spec, pseudonyms)
    stats = GroupStats()
    stream = JsonlStream(out)
    for _prompt, row in view.rows(export_record_groups(filters=spec.filters, full=False, stats=stats)):
        stream.write(row)
    out.flush()
    return {
        "format": spec.format,
        "view": "conversational, explicit prompt",
        "name": spec.name,
        "columns": view.columns,
        "rows": stream.rows,
        "skipped": _skipped(view, stats),
        "margin_mapping": MARGIN_MAPPING_DOC,
        "rater_id": RATER_ID_DOC,
        "filters": spec.filters,
        "sha256": stream.sha256,
        "created_at": (created_at or timezone.now()).astimezone(UTC).isoformat(),
        "code_version": code_version(),
    }


def export_preferences_write_file(
    *, path: Path, filters: Any, name: str, created_at: datetime | None = None
) -> dict[str, Any]:
    """Like :func:`export_preferences_write`, into ``path``, all or nothing (temporary file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with open(fd, "wb") as fh:
            manifest = export_preferences_write(out=fh, filters=filters, name=name, created_at=created_at)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


# --- runs ---------------------------------------------------------------------------------------


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
        export_run.judgments_total = export_judgment_queryset(filters=spec.filters).count()
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
