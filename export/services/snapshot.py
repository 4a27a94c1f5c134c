"""Write a snapshot: the rows of one validated spec, its dataset card and its manifest.

A snapshot is a folder ``<name>/`` holding ``README.md`` (the dataset card) and
``data/<split>.jsonl[.gz]`` / ``data/<split>.parquet``. It appears complete or not at all: it is
written under a hidden temporary name and renamed into place. Raw ``trl`` and ``hh`` rows go
through ``export.columnar``, the other judgment views through the record path; both give the same
bytes, and the same spec over the same data gives byte-identical files. The ``sft`` view reads
finished conversation sessions (``export.selectors.sessions``) instead of judgments. Nothing here
touches an ``ExportRun`` (see ``export.services.runs``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from export.card import dataset_card
from export.columnar import columnar_write
from export.formats import FULL_RECORD_VIEWS, VIEWS
from export.formats.base import MARGIN_MAPPING_DOC, PairView, View
from export.formats.native import NativeView
from export.formats.redteam import REDTEAM_MARGIN, RedteamView, redteam_pair_rows
from export.formats.sft import SftView
from export.records import PromptInfo
from export.selectors.facts import export_likert_keys, export_queue_names, export_rubrics, export_templates
from export.selectors.judgments import export_judgment_queryset, export_paused_left_out
from export.selectors.record_groups import GroupStats, export_record_groups
from export.selectors.redteam import (
    ATTACK_SIDE_DOC,
    export_redteam_attempts,
    export_redteam_counts,
    export_redteam_side,
)
from export.selectors.sessions import export_conversation_counts, export_session_records
from export.spec import ExportSpec
from export.splits import REDTEAM_PAIRS_SPLIT_DOC, SPLIT_DOC, family_split, prompt_split
from export.writers import RATER_ID_DOC, Pseudonyms, SnapshotWriter, file_sha256


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
        "filters": spec.filters,
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
    if isinstance(view, PairView) and view.aggregated:
        # min_judgments / min_agreement were tested per pooled candidate pair (pairs_below_*).
        return skipped
    skipped["comparisons_below_min_judgments"] = stats.dropped_min_judgments
    skipped["comparisons_below_min_agreement"] = stats.dropped_min_agreement
    skipped["judgments_in_dropped_comparisons"] = stats.judgments_dropped
    return skipped


def _facts(view: View, stats: GroupStats, spec: ExportSpec) -> dict[str, Any]:
    if isinstance(view, RedteamView):
        return {
            "judgments": 0,
            "comparisons": 0,
            "raters": 0,
            "agreement": {"mean": None, "comparisons": 0},
            "skipped": dict(sorted(view.stats.items())),
            "code_version": code_version(),
        }
    if isinstance(view, SftView):
        return {
            "sessions": view.sessions_read,
            "judgments": 0,
            "comparisons": 0,
            "raters": len(view.trainer_ids),
            "agreement": {"mean": None, "comparisons": 0},
            "skipped": {key: view.stats[key] for key in ("sessions_without_reply", "unsettled_turns")},
            "code_version": code_version(),
        }
    return {
        "judgments": stats.judgments,
        "comparisons": stats.comparisons,
        "raters": len(stats.rater_ids),
        "agreement": {"mean": stats.mean_agreement, "comparisons": stats.agreement_comparisons},
        "skipped": {
            **_skipped(view, stats),
            **(
                {"judgments_of_paused_raters": export_paused_left_out(filters=spec.filters)}
                if spec.filters.get("exclude_paused_raters")
                else {}
            ),
        },
        "conversations": export_conversation_counts(filters=spec.filters),
        "composition": stats.composition.as_dict(),
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
                name=spec.name,
                content_hash=prompt.content_hash,
                source=prompt.source,
                messages=prompt.messages,
                options=spec.options,
            )
        return prompt.split

    writer = SnapshotWriter(
        folder, schema=view.schema, kinds=spec.options["files"], gzip_jsonl=spec.options["gzip"]
    )
    try:
        categories = spec.filters.get("harm_categories")
        if isinstance(view, SftView):
            sessions = export_session_records(filters=spec.filters, on_chunk=on_progress)
            for prompt, row in view.session_rows(sessions):
                writer.write(split_of(prompt), row)
        elif isinstance(view, RedteamView):
            attacks = (
                export_redteam_side(side="test", categories=categories)
                if spec.format == "redteam_eval"
                else export_redteam_attempts(categories=categories)
            )
            for split, row in view.attack_rows(attacks):
                writer.write(split, row)
        elif not view.with_judgments:
            pass  # sources: red-team pairs only (below)
        elif isinstance(view, PairView) and view.columnar and not view.with_redteam:
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
            pooled = isinstance(view, PairView) and view.aggregated  # votes pooled per candidate pair
            groups = export_record_groups(
                filters=spec.filters,
                full=full,
                duplicates=view.reads_duplicates,
                on_chunk=on_progress,
                stats=stats,
                pool=pooled,
            )
            for prompt, row in view.rows(groups):
                writer.write(split_of(prompt), row)
            if pooled:
                assert isinstance(view, PairView)
                stats.rater_ids, stats.rubric_ids = view.rater_ids, view.rubric_ids
        if isinstance(view, PairView) and view.with_redteam:
            # After the judgment rows, by attack id; split by family (export.splits.family_split).
            for attack, row in redteam_pair_rows(
                view, export_redteam_side(side="train", categories=categories)
            ):
                writer.write(family_split(name=spec.name, family=attack.family, options=spec.options), row)
        files = writer.close()
    except BaseException:
        writer.abort()
        raise
    facts = _facts(view, stats, spec)
    redteam = _redteam_facts(view, spec)
    card = dataset_card(
        redteam=redteam,
        name=spec.name,
        view=view,
        spec=spec,
        files=files,
        facts=facts,
        rubrics=export_rubrics(rubric_ids=stats.rubric_ids),
        templates=export_templates(filters=spec.filters) if isinstance(view, SftView) else [],
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
        **({"sessions": facts["sessions"]} if "sessions" in facts else {}),
        "judgments": facts["judgments"],
        "comparisons": facts["comparisons"],
        "raters": facts["raters"],
        "agreement": facts["agreement"],
        **({"composition": facts["composition"]} if "composition" in facts else {}),
        "filters": spec.filters,
        "options": spec.options,
        "margin_mapping": MARGIN_MAPPING_DOC,
        "rater_id": RATER_ID_DOC,
        "split_rule": SPLIT_DOC,
        "paused_raters": "exclude_paused_raters leaves out users with is_active = false and raters "
        "paused from the judgment's queue (an open gold auto-pause); the count is under skipped",
        "sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest(),
        "sha256_of": "the lines '<sha256>  <path>\\n' of every file, sorted by path (sha256sum -c format)",
        "code_version": facts["code_version"],
        **({"redteam": redteam} if redteam is not None else {}),
    }


def _redteam_facts(view: View, spec: ExportSpec) -> dict[str, Any] | None:
    """The red-team part of the manifest and card, when the export holds red-team data: per
    category, the training pairs, the test items and the confirmed attacks without a safe reply."""
    if not (isinstance(view, RedteamView) or view.with_redteam):
        return None
    return {
        "counts": export_redteam_counts(categories=spec.filters.get("harm_categories")),
        "side_rule": ATTACK_SIDE_DOC,
        "pair_split_rule": REDTEAM_PAIRS_SPLIT_DOC,
        "margin": REDTEAM_MARGIN,
        "pairs": "chosen = the ideal reply (safe, or for an over-refusal the helpful answer), "
        "rejected = the model's reply (harmful, or the needless refusal)",
    }
