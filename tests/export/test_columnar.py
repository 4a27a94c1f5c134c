"""The columnar path (export.columnar) writes the same files as the record path, byte for byte.

Raw ``trl`` and ``hh`` snapshots go through the columnar path; forcing the record path
(``columnar`` off) over the same data must give the same manifest: every file's sha256 (JSONL,
Parquet, card), row counts, skipped counts and agreement. The data mixes what the columnar path
handles (pairs, several raters per comparison, ties, an A/B swap) with what it hands to the
record path (a K=4 ranking), in one chunk and across many tiny chunks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from export.formats import HhView, TrlView
from export.records import ExportDataError
from export.selectors import pair_chunks
from export.services import export_snapshot_write
from export.spec import export_spec_clean
from export.writers import SnapshotWriter
from labeling.models import Assignment
from tests.export.test_aggregation import cross_queue, strengths  # noqa: F401 (fixtures)
from tests.factories import AssignmentFactory, JudgmentFactory, RaterFactory

CASES = [
    ("trl", {}),
    ("trl", {"standard": True}),
    ("trl", {"implicit_prompt": True}),
    ("trl", {"standard": True, "implicit_prompt": True}),
    ("hh", {}),
]


def _more_votes(export_data, key: str, preferences: list[int], *, swap: bool = False) -> None:
    """More judgments of the comparison of ``export_data.judgments[key]``, one new rater each."""
    item = export_data.judgments[key].assignment.item
    order = list(item.comparison.members.order_by("position").values_list("candidate_id", flat=True))
    for i, preference in enumerate(preferences):
        assignment = AssignmentFactory(
            item=item,
            rater=RaterFactory(),
            status=Assignment.Status.SUBMITTED,
            shown_order=order[::-1] if swap and i % 2 == 0 else order,
        )
        JudgmentFactory(assignment=assignment, preference=preference)


@pytest.fixture
def votes(export_data):
    """Comparisons with 3 and 4 judgments (agreement below 1, ties among them, shown both ways)."""
    _more_votes(export_data, "a_much_better", [-1, 2], swap=True)  # 3 judgments
    _more_votes(export_data, "b_better", [0, -2, 3], swap=True)  # 4 judgments
    return export_data


def _write(tmp_path: Path, name: str, *, format: str, options: dict, filters: dict | None = None) -> dict:
    spec = export_spec_clean(
        name="columnar",
        format=format,
        filters=filters or {},
        options={"files": ["jsonl", "parquet"], "test_fraction": 0.5, **options},
    )
    manifest = export_snapshot_write(spec=spec, folder=tmp_path / name)
    manifest.pop("created_at")
    return manifest


def _record_path(monkeypatch) -> None:
    for view in (TrlView, HhView):
        monkeypatch.setattr(view, "columnar", property(lambda self: False))


@pytest.mark.django_db
@pytest.mark.parametrize("format,options", CASES)
def test_columnar_files_match_record_path(votes, tmp_path, monkeypatch, format, options):
    tables: list[int] = []
    write_table = SnapshotWriter.write_table

    def counting_write_table(self, split, table):
        tables.append(table.num_rows)
        write_table(self, split, table)

    monkeypatch.setattr(SnapshotWriter, "write_table", counting_write_table)
    columnar = _write(tmp_path, "columnar", format=format, options=options)
    assert sum(tables) == columnar["rows"] - 5  # all but the ranking's 5 pairs were built as columns
    one_chunk = len(tables)
    # Tiny chunks: comparisons are carried across chunk ends, the ranking sits between pair runs.
    monkeypatch.setattr(pair_chunks, "COLUMN_CHUNK_SIZE", 2)
    chunked = _write(tmp_path, "chunked", format=format, options=options)
    assert len(tables) - one_chunk > one_chunk  # the tiny chunk size took effect: more, smaller tables
    _record_path(monkeypatch)
    record = _write(tmp_path, "record", format=format, options=options)

    assert columnar == record
    assert chunked == record
    assert set(record["splits"]) == {"train", "test"}
    assert record["skipped"]["ties"] == 3  # the tie, the ranking's A=D tie, a 0 vote
    assert record["agreement"]["comparisons"] == 2 and record["agreement"]["mean"] < 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "filters",
    [{"min_judgments": 3}, {"min_agreement": 0.6}, {"queues": "main", "min_judgments": 2}],
)
def test_columnar_per_comparison_filters_match_record_path(votes, tmp_path, monkeypatch, filters):
    if filters.get("queues") == "main":
        filters = {**filters, "queues": [votes.queue.pk]}
    columnar = _write(tmp_path, "columnar", format="trl", options={}, filters=filters)
    _record_path(monkeypatch)
    record = _write(tmp_path, "record", format="trl", options={}, filters=filters)

    assert columnar == record
    assert record["skipped"]["judgments_in_dropped_comparisons"] > 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "shown_order",
    [[10**9, 10**9 + 1], ["x", "y"], [1, 2, 3], {"a": 1}],
    ids=["unknown-ids", "strings", "three", "object"],
)
def test_columnar_bad_shown_order_fails_like_record_path(export_data, tmp_path, monkeypatch, shown_order):
    """Stored data the columnar path does not recognise goes through the record path and its errors."""
    judgment = export_data.judgments["b_better"]
    Assignment.objects.filter(pk=judgment.assignment_id).update(shown_order=shown_order)
    with pytest.raises(ExportDataError) as columnar:
        _write(tmp_path, "columnar", format="trl", options={})
    _record_path(monkeypatch)
    with pytest.raises(ExportDataError) as record:
        _write(tmp_path, "record", format="trl", options={})

    assert str(columnar.value) == str(record.value)
    assert f"judgment {judgment.pk}" in str(columnar.value)
    assert not (tmp_path / "columnar").exists()


@pytest.mark.django_db
def test_columnar_repeated_shown_id_matches_record_path(export_data, tmp_path, monkeypatch):
    """A pair shown with the same id twice is accepted by the record path: the columnar path defers to it."""
    judgment = export_data.judgments["a_much_better"]
    first = judgment.assignment.shown_order[0]
    Assignment.objects.filter(pk=judgment.assignment_id).update(shown_order=[first, first])
    columnar = _write(tmp_path, "columnar", format="trl", options={})
    _record_path(monkeypatch)
    record = _write(tmp_path, "record", format="trl", options={})

    assert columnar == record


@pytest.mark.django_db
@pytest.mark.parametrize("format,options", CASES)
@pytest.mark.parametrize("filters", [{}, {"min_agreement": 0.6}, {"min_judgments": 2}])
def test_columnar_matches_record_path_on_pooled_and_half_strength_data(
    strengths,  # noqa: F811 (a fixture)
    cross_queue,  # noqa: F811 (a fixture)
    tmp_path,
    monkeypatch,
    format,
    options,
    filters,
):
    """The aggregation cases (tests/export/test_aggregation.py: votes averaging +-0.5, 1.5 and 2.5,
    a pair judged in a pairwise queue and inside a ranking) through both raw paths."""
    columnar = _write(tmp_path, "columnar", format=format, options=options, filters=filters)
    _record_path(monkeypatch)
    record = _write(tmp_path, "record", format=format, options=options, filters=filters)

    assert columnar == record
    assert record["rows"] > 0


@pytest.mark.django_db
@pytest.mark.parametrize("aggregation", ["majority", "mean"])
def test_aggregated_pair_views_never_take_the_columnar_path(aggregation):
    """Pooling per candidate pair needs every comparison of a prompt: the record path only."""
    for view in (TrlView, HhView):
        built = view(aggregation=aggregation, options={}, pseudonym=str, queue_names={})
        assert not built.columnar
