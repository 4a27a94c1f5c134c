"""The texts a reward check trains and scores on: (chosen, rejected) pairs, each text the prompt in
TRL's standard form (``User: ...\\n\\nAssistant:``) followed by the response.

- ``snapshot_pairs``: one split of a finished snapshot, read back from its JSONL (or Parquet) file.
  Formats with pairs: ``trl`` (conversational, implicit-prompt or standard) and ``rankings`` with
  ``pairs``, ``hh`` (its transcripts as they are) and ``helpsteer`` (ties left out).
- ``gold_pairs``: the gold items (answers set by admins) of the queues the snapshot drew from, each
  gold preference or ranking turned into pairs in the comparison's stored candidate order.
- ``known_pairs_parse``: a researcher's JSONL of known-direction pairs ``{prompt, chosen, rejected}``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from comparisons.models import ComparisonCandidate
from export.formats.pairs import standard_completion, standard_prompt
from export.models import ExportRun, RewardCheck
from labeling.errors import ApplicationError, Conflict
from labeling.models import QueueItem

Pair = tuple[str, str]

PAIR_FORMATS = ("trl", "hh", "helpsteer", "rankings")
#: Lines a known-pairs file may have.
KNOWN_PAIRS_MAX = 5000


def pairs_supported(*, export_run: ExportRun) -> str | None:
    """Why this run's rows are not preference pairs, or None when they are."""
    fmt = export_run.format
    if fmt == "rankings" and not export_run.options.get("pairs"):
        return "format rankings without pairs has no (chosen, rejected) rows; export it with pairs"
    if fmt not in PAIR_FORMATS:
        return f"format {fmt} has no (chosen, rejected) rows; export as trl, hh or helpsteer"
    return None


def _text(prompt: Any, response: Any) -> str:
    if isinstance(prompt, list):
        prompt = standard_prompt(prompt)
    if isinstance(response, list):
        response = response[-1]["content"] if response else ""
    return f"{prompt}{standard_completion(str(response))}"


def _row_pair(row: dict[str, Any], fmt: str) -> Pair | None:
    if fmt == "helpsteer":
        strength = float(row.get("preference_strength") or 0)
        if strength == 0:
            return None
        prompt = row.get("prompt_messages") or [{"role": "user", "content": row["prompt"]}]
        first, second = _text(prompt, row["response_1"]), _text(prompt, row["response_2"])
        return (first, second) if strength < 0 else (second, first)
    chosen, rejected = row["chosen"], row["rejected"]
    if fmt == "hh":
        return str(chosen), str(rejected)
    if "prompt" in row:
        return _text(row["prompt"], chosen), _text(row["prompt"], rejected)
    # Implicit prompt: the whole conversation in each column, the last turn the response.
    return _text(chosen[:-1], chosen[-1:]), _text(rejected[:-1], rejected[-1:])


def _rows(folder: Path, entry: dict[str, Any]) -> Iterator[dict[str, Any]]:
    path = folder / entry["path"]
    if entry["kind"] == "parquet":
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def snapshot_pairs(*, export_run: ExportRun, folder: Path, split: str) -> list[Pair]:
    """The split's pairs, in file order (an empty list when the snapshot has no such split)."""
    entries = [
        f for f in export_run.files if f.get("split") == split and f.get("kind") in ("jsonl", "parquet")
    ]
    entries.sort(key=lambda f: f["kind"] != "jsonl")  # JSONL first: no pyarrow needed
    if not entries:
        return []
    pairs = (_row_pair(row, export_run.format) for row in _rows(folder, entries[0]))
    return [p for p in pairs if p is not None]


def snapshot_comparison_ids(*, export_run: ExportRun, folder: Path) -> set[int]:
    ids: set[int] = set()
    for entry in export_run.files:
        if entry.get("kind") == "jsonl" or (entry.get("kind") == "parquet" and not ids):
            for row in _rows(folder, entry):
                if isinstance(row.get("comparison_id"), int):
                    ids.add(row["comparison_id"])
    return ids


def _gold_ordered(gold: dict[str, Any], size: int) -> list[tuple[int, int]]:
    """(better position, worse position) pairs from a gold answer in stored candidate positions."""
    if "preference" in gold and size == 2:
        preference = int(gold["preference"])
        return [] if preference == 0 else [(0, 1)] if preference < 0 else [(1, 0)]
    if "ranking" in gold:
        groups = [list(map(int, g)) for g in gold["ranking"]]
        return [(a, b) for i, g in enumerate(groups) for a in g for later in groups[i + 1 :] for b in later]
    return []


def gold_pairs(*, export_run: ExportRun, folder: Path) -> list[Pair]:
    """Pairs from the gold answers of the queues the snapshot drew from (its ``queues`` filter, or
    the queues holding its comparisons)."""
    queue_ids = list(export_run.filters.get("queues") or [])
    if not queue_ids:
        comparisons = snapshot_comparison_ids(export_run=export_run, folder=folder)
        queue_ids = list(
            QueueItem.objects.filter(comparison_id__in=comparisons)
            .values_list("queue_id", flat=True)
            .distinct()
        )
    items = (
        QueueItem.objects.filter(queue_id__in=queue_ids, is_gold=True, gold_answer__isnull=False)
        .select_related("comparison__prompt")
        .order_by("id")
    )
    pairs: list[Pair] = []
    for item in items:
        members = list(
            ComparisonCandidate.objects.filter(comparison_id=item.comparison_id)
            .select_related("candidate")
            .order_by("position")
        )
        texts = [m.candidate.text for m in members]
        messages = item.comparison.prompt.messages
        for better, worse in _gold_ordered(item.gold_answer or {}, len(texts)):
            if better < len(texts) and worse < len(texts):
                pairs.append((_text(messages, texts[better]), _text(messages, texts[worse])))
    return pairs


def known_pairs_parse(*, text: str) -> list[dict[str, str]]:
    """A JSONL file of ``{"prompt", "chosen", "rejected"}`` (strings; the prompt may be a list of
    messages; a plain string is the user's message), stored with the prompt in the standard form;
    ApplicationError naming the line and the field otherwise."""
    out: list[dict[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(out) >= KNOWN_PAIRS_MAX:
            raise ApplicationError(f"known_pairs: at most {KNOWN_PAIRS_MAX} lines", field="known_pairs")
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ApplicationError(
                f"known_pairs line {number}: not JSON ({exc})", field="known_pairs"
            ) from exc
        if not isinstance(row, dict):
            raise ApplicationError(f"known_pairs line {number}: expected an object", field="known_pairs")
        for key in ("prompt", "chosen", "rejected"):
            value = row.get(key)
            if not (isinstance(value, str) and value) and not (key == "prompt" and isinstance(value, list)):
                raise ApplicationError(
                    f"known_pairs line {number}: {key!r} must be a non-empty string", field="known_pairs"
                )
        prompt = row["prompt"]
        if isinstance(prompt, list):
            if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in prompt):
                raise ApplicationError(
                    f"known_pairs line {number}: 'prompt' messages need a 'role' and a 'content'",
                    field="known_pairs",
                )
            prompt = standard_prompt(prompt)
        elif not prompt.rstrip().endswith("Assistant:"):
            prompt = standard_prompt([{"role": "user", "content": prompt}])
        out.append({"prompt": prompt, "chosen": row["chosen"], "rejected": row["rejected"]})
    return out


def known_pairs_texts(pairs: list[dict[str, str]]) -> list[Pair]:
    """Stored known pairs (prompts already in the standard form) as texts."""
    return [(_text(p["prompt"], p["chosen"]), _text(p["prompt"], p["rejected"])) for p in pairs]


def reward_check_source(*, export_run: ExportRun) -> None:
    """Conflict (409) unless the run is a finished snapshot of preference pairs."""
    if export_run.status != ExportRun.Status.SUCCEEDED:
        raise Conflict(
            f"Export {export_run.pk} is {export_run.status}; a reward check needs a finished (succeeded) export.",
            field="status",
        )
    problem = pairs_supported(export_run=export_run)
    if problem:
        raise Conflict(f"Export {export_run.pk}: {problem}.", field="format")


#: Bytes a known-pairs upload may have.
KNOWN_PAIRS_MAX_BYTES = 5 * 1024 * 1024


def known_pairs_upload_read(upload: Any) -> str:
    """An uploaded known-pairs file as text (UTF-8, at most ``KNOWN_PAIRS_MAX_BYTES``)."""
    if upload.size > KNOWN_PAIRS_MAX_BYTES:
        raise ApplicationError(
            f"known_pairs: the file is over {KNOWN_PAIRS_MAX_BYTES // (1024 * 1024)} MB", field="known_pairs"
        )
    try:
        return str(upload.read().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApplicationError(f"known_pairs: not UTF-8 ({exc})", field="known_pairs") from exc


def reward_check_list(*, export_run: ExportRun) -> QuerySet[RewardCheck]:
    """The run's reward checks, newest first."""
    return export_run.reward_checks.select_related("created_by").order_by("-id")


def reward_check_latest(*, export_runs: list[ExportRun]) -> dict[int, RewardCheck]:
    """The newest reward check of each of these runs (runs without one are left out)."""
    latest: dict[int, RewardCheck] = {}
    checks = RewardCheck.objects.filter(export_run__in=[r.pk for r in export_runs]).order_by("-id")
    for check in checks:
        latest.setdefault(check.export_run_id, check)
    return latest
