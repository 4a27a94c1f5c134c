"""The columnar path for the raw pair views (``trl``, ``hh``): the record path's rows, built as Arrow columns.

The record path (``selectors.record_groups.export_record_groups`` -> ``records.pair_events`` -> ``View.row``)
makes Python objects per judgment and a dict per row, which caps it near 13,000 rows/s. This
path reads the judgments as plain tuples (``selectors.pair_chunks.export_pair_chunks``: no per-row JSON),
decodes each prompt and candidate once per chunk, computes each prompt's columns and each
candidate's ``chosen`` / ``rejected`` value once with the view's own ``prompt_columns`` and
``completion`` (the methods its ``row`` is made of), and assembles every column with Arrow
``take`` over row indices computed with numpy.

It covers the common case: comparisons whose judgments are all pair preferences of a
2-candidate comparison of two different texts, shown in one of its two orders. Any other
comparison (a K-way ranking, a pair of identical texts, which the views leave out and count,
stored data that does not fit) goes, in its place in the row order, through the record path,
which also raises its errors. What this module fixes in columns is the raw pair-judgment case of
``records`` and ``formats``, and nothing else:

* ``x`` = the candidate shown first (label A), ``strength`` = the preference; ``chosen`` is ``x``
  when the strength is negative, else ``y``; ``margin = abs(strength)``; ties are left out and
  counted in ``view.stats["ties"]``.
* provenance: ``prompt_id`` (public id), ``comparison_id``, ``ranking_id`` null, ``rater_id`` (the
  view's pseudonym), ``judgment_id``.
* per comparison (``selectors.record_groups._keep``): ``min_judgments``, then ``min_agreement`` against the
  agreement of ``records.agreement`` for one pair (the share of the judgments agreeing with the
  most common answer: position 0 better, tie, position 1 better); the agreement of kept
  comparisons with two or more judgments is summed in comparison order.

Aggregated views never come here: they pool votes per candidate pair across the comparisons of
a prompt (``records.pooled_events``), on the record path only.

tests/export/test_columnar.py writes the same data through both paths and compares the files.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from comparisons.dedupe import same_text
from export.formats.base import PairView
from export.records import PromptInfo
from export.selectors.pair_chunks import PairChunk, export_pair_chunks
from export.selectors.record_groups import GroupStats, export_comparison_records, keep_group
from export.writers import SnapshotWriter

# A stored shown order of exactly two integer ids, as PostgreSQL (jsonb) and SQLite print it.
_TWO_IDS = r"^\[\s*(?P<a>0|[1-9][0-9]{0,17})\s*,\s*(?P<b>0|[1-9][0-9]{0,17})\s*\]$"


def columnar_write(
    *,
    view: PairView,
    filters: dict[str, Any],
    writer: SnapshotWriter,
    stats: GroupStats,
    split_of: Callable[[PromptInfo], str],
    on_chunk: Callable[[int], None] | None = None,
    full: bool = False,
) -> None:
    """Write the view's rows for the filtered judgments, as the record path would, counting in ``stats``."""
    assert view.columnar, f"{view.name} ({view.aggregation}) has no columnar path"
    with _young_collections_only():
        for chunk in export_pair_chunks(filters=filters):
            _Chunk(view, chunk, filters=filters, stats=stats, split_of=split_of, full=full).write(writer)
            gc.collect(1)
            if on_chunk is not None:
                on_chunk(chunk.done)


@contextmanager
def _young_collections_only() -> Iterator[None]:
    """Collect only the young generations, once per chunk, while exporting.

    A chunk allocates hundreds of thousands of short-lived, acyclic objects (row tuples, message
    dicts) that reference counting frees; left automatic, the collector runs full collections
    over them dozens of times per million judgments, which took ~40% of the export's time.
    Cyclic garbage is still collected after every chunk (``gc.collect(1)``), so memory stays
    bounded; the automatic collector is back on when the export ends, also on error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Chunk:
    """One chunk's judgments (whole comparisons, ordered by comparison then judgment id) as numpy columns."""

    def __init__(
        self,
        view: PairView,
        chunk: PairChunk,
        *,
        filters: dict[str, Any],
        stats: GroupStats,
        split_of: Callable[[PromptInfo], str],
        full: bool,
    ) -> None:
        self.view, self.chunk, self.filters, self.stats = view, chunk, filters, stats
        self.split_of, self.full = split_of, full
        ids, prefs, unranked, rubric_ids, rater_ids, comparison_ids, prompt_ids, shown = zip(
            *chunk.rows, strict=True
        )
        n = len(ids)
        self.ids = np.array(ids, dtype=np.int64)
        self.rubric_ids = np.array(rubric_ids, dtype=np.int64)
        self.rater_ids = np.array(rater_ids, dtype=np.int64)
        self.comparison_ids = np.array(comparison_ids, dtype=np.int64)
        self.prompt_ids = np.array(prompt_ids, dtype=np.int64)
        preference = pa.array(prefs, pa.int64())
        self.preference = preference.fill_null(0).to_numpy()

        # Comparisons: the first row of each, its size, and each row's comparison index.
        cmp = self.comparison_ids
        self.starts = np.flatnonzero(np.concatenate(([True], cmp[1:] != cmp[:-1])))
        self.sizes = np.diff(np.append(self.starts, n))
        self.group = np.repeat(np.arange(len(self.starts)), self.sizes)
        members = [chunk.candidates.get(c, []) for c in cmp[self.starts].tolist()]
        self.members = members
        # A pair of identical texts is left out by the views (counted): the record path does it.
        is_pair = np.array([len(m) == 2 and not same_text(m[0].text, m[1].text) for m in members], dtype=bool)
        first = np.array([m[0].id if len(m) == 2 else -1 for m in members], dtype=np.int64)[self.group]
        second = np.array([m[1].id if len(m) == 2 else -1 for m in members], dtype=np.int64)[self.group]

        # The shown order, parsed in bulk: anything but two integer ids is -1 (record path).
        two = pc.extract_regex(pa.array(shown, pa.string()), _TWO_IDS)
        s0 = pc.cast(pc.struct_field(two, "a"), pa.int64()).fill_null(-1).to_numpy()
        s1 = pc.cast(pc.struct_field(two, "b"), pa.int64()).fill_null(-1).to_numpy()
        row_ok = (
            np.array(unranked, dtype=bool)
            & preference.is_valid().to_numpy(zero_copy_only=False)
            & is_pair[self.group]
            & (((s0 == first) & (s1 == second)) | ((s0 == second) & (s1 == first)))
        )
        self.fast = np.logical_and.reduceat(row_ok, self.starts)

        # Per comparison: counts of (position 0 better, tie, position 1 better) -> agreement.
        signed = np.where(s0 == first, self.preference, -self.preference)
        counts = np.bincount(self.group * 3 + np.sign(signed) + 1, minlength=3 * len(self.starts)).reshape(
            -1, 3
        )
        self.share = counts.max(axis=1) / self.sizes
        self.big_enough = self.sizes >= filters.get("min_judgments", 1)
        self.agreeing = ~(self.share < filters.get("min_agreement", 0.0))
        self.kept = self.fast & self.big_enough & self.agreeing

        # chosen / rejected as indices into the per-candidate values (2 per comparison).
        chosen_id = np.where(self.preference < 0, s0, s1)
        chosen_second = (chosen_id == second).astype(np.int64)
        self.chosen = 2 * self.group + chosen_second
        self.rejected = 2 * self.group + 1 - chosen_second

    def write(self, writer: SnapshotWriter) -> None:
        """Comparisons in order: runs of columnar ones, and each other one through the record path."""
        slow = np.flatnonzero(~self.fast).tolist()
        records: dict[int, list[Any]] = {}
        if slow:
            wanted = self.comparison_ids[self.starts[slow]].tolist()
            for record in export_comparison_records(
                filters=self.filters, comparison_ids=wanted, full=self.full
            ):
                records.setdefault(record.comparison_id, []).append(record)
        self._columns()
        lo = 0
        for k in [*slow, len(self.starts)]:
            if k > lo:
                self._write_fast(writer, lo, k)
            if k < len(self.starts):
                # (empty only if its judgments were deleted since the chunk was read: nothing to write)
                group = records.get(int(self.comparison_ids[self.starts[k]]), [])
                for prompt, row in self.view.rows(
                    [group] if group and keep_group(group, self.stats, filters=self.filters) else []
                ):
                    writer.write(self.split_of(prompt), row)
            lo = k + 1

    def _columns(self) -> None:
        """Each prompt's and candidate's values, once, with the view's own methods."""
        view, fields = self.view, self.view.schema
        prompt_ids, self.prompt_index = np.unique(self.prompt_ids, return_inverse=True)
        prompts = [self.chunk.prompts[p] for p in prompt_ids.tolist()]
        self.prompt_tags = [p.tags for p in prompts]
        self.tagged = np.array([bool(t) for t in self.prompt_tags], dtype=bool)
        splits = [self.split_of(p) for p in prompts]
        self.split_names = sorted(set(splits))
        self.prompt_split = np.array([self.split_names.index(s) for s in splits], dtype=np.int64)
        per_prompt = [view.prompt_columns(p) for p in prompts]
        self.prompt_arrays = {
            name: pa.array([values[name] for values in per_prompt], fields.field(name).type)
            for name in (per_prompt[0] if per_prompt else {})
        }
        self.prompt_arrays["prompt_id"] = pa.array([p.public_id for p in prompts], pa.string())
        completions: list[Any] = []
        for k, members in enumerate(self.members):
            if self.fast[k]:
                prompt = self.chunk.prompts[int(self.prompt_ids[self.starts[k]])]
                completions += [view.completion(prompt, members[0]), view.completion(prompt, members[1])]
            else:
                completions += [None, None]
        self.completions = pa.array(completions, fields.field("chosen").type)
        rater_ids, self.rater_index = np.unique(self.rater_ids, return_inverse=True)
        self.rater_names = pa.array([view.pseudonym(r) for r in rater_ids.tolist()], pa.string())

    def _write_fast(self, writer: SnapshotWriter, lo: int, hi: int) -> None:
        """Comparisons lo..hi-1 (all columnar): count them as ``keep_group`` does, write their rows."""
        stats, sizes = self.stats, self.sizes[lo:hi]
        small = ~self.big_enough[lo:hi]
        disagree = self.big_enough[lo:hi] & ~self.agreeing[lo:hi]
        kept = self.kept[lo:hi]
        stats.comparisons += hi - lo
        stats.judgments += int(sizes.sum())
        stats.dropped_min_judgments += int(small.sum())
        stats.dropped_min_agreement += int(disagree.sum())
        stats.judgments_dropped += int(sizes[small | disagree].sum())
        for share in self.share[lo:hi][kept & (sizes > 1)].tolist():  # in order: the sum is exact
            stats.agreement_sum += share
            stats.agreement_comparisons += 1
        rows = slice(self.starts[lo], self.starts[hi] if hi < len(self.starts) else len(self.ids))
        in_kept = self.kept[self.group[rows]]
        stats.rater_ids.update(np.unique(self.rater_ids[rows][in_kept]).tolist())
        stats.rubric_ids.update(np.unique(self.rubric_ids[rows][in_kept]).tolist())
        self._compose(lo, hi, rows, in_kept)
        ties = int((in_kept & (self.preference[rows] == 0)).sum())
        if ties:
            self.view.stats["ties"] += ties
        index = np.flatnonzero(in_kept & (self.preference[rows] != 0)) + rows.start
        split = self.prompt_split[self.prompt_index[index]]
        for code, name in enumerate(self.split_names):
            part = index[split == code]
            if len(part):
                writer.write_table(name, self._table(part))

    def _compose(self, lo: int, hi: int, rows: slice, in_kept: np.ndarray) -> None:
        """The composition (``export.composition``) of comparisons lo..hi-1, as ``keep_group``
        counts it: judgments per (prompt, rater) in bulk, agreements in comparison order."""
        composition, prompts = self.stats.composition, self.prompt_tags
        prompt_of_row = self.prompt_index[rows][in_kept]
        rater_of_row = self.rater_ids[rows][in_kept]
        if len(prompt_of_row):
            keys, counts = np.unique(np.stack([prompt_of_row, rater_of_row]), axis=1, return_counts=True)
            for (p, rater), n in zip(keys.T.tolist(), counts.tolist(), strict=True):
                composition.add_judgments(prompts[p], rater, n)
        tagged = (
            self.kept[lo:hi] & (self.sizes[lo:hi] > 1) & self.tagged[self.prompt_index[self.starts[lo:hi]]]
        )
        for k in (np.flatnonzero(tagged) + lo).tolist():
            composition.add_agreement(prompts[self.prompt_index[self.starts[k]]], float(self.share[k]))

    def _table(self, index: np.ndarray) -> pa.Table:
        arrays = []
        for name in self.view.columns:
            if name == "chosen":
                arrays.append(self.completions.take(self.chosen[index]))
            elif name == "rejected":
                arrays.append(self.completions.take(self.rejected[index]))
            elif name in self.prompt_arrays:
                arrays.append(self.prompt_arrays[name].take(self.prompt_index[index]))
            elif name == "margin":
                arrays.append(pa.array(np.abs(self.preference[index]).astype(np.float64)))
            elif name == "comparison_id":
                arrays.append(pa.array(self.comparison_ids[index]))
            elif name == "ranking_id":
                arrays.append(pa.nulls(len(index), pa.int64()))
            elif name == "rater_id":
                arrays.append(self.rater_names.take(self.rater_index[index]))
            elif name == "judgment_id":
                arrays.append(pa.array(self.ids[index]))
            else:
                raise AssertionError(f"no columnar rule for column {name!r} of {self.view.name}")
        return pa.Table.from_arrays(arrays, schema=self.view.schema)
