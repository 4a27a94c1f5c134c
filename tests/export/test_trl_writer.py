"""The TRL preference rows: exact bytes (golden file), A/B mapping, ties, rankings, filters."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from export.services import export_preferences_write, export_preferences_write_file
from export.writers import rater_pseudonym
from labeling.errors import ApplicationError

TRL_COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "margin",
    "prompt_id",
    "comparison_id",
    "ranking_id",
    "rater_id",
    "judgment_id",
)

GOLDEN = Path(__file__).parent / "golden" / "trl_preferences.jsonl"
_ID_FIELDS = re.compile(r'"(comparison_id|judgment_id|ranking_id)":(\d+)|"(rater_id)":"([0-9a-f]{16})"')


def normalize_ids(data: bytes) -> bytes:
    """Replace database-dependent ids by their order of first appearance, leaving every other byte."""
    seen: dict[tuple[str, str], int] = {}

    def ordinal(match: re.Match[str]) -> str:
        if match.group(1):
            key, value = match.group(1), match.group(2)
            number = seen.setdefault((key, value), sum(1 for k, _ in seen if k == key) + 1)
            return f'"{key}":{number}'
        key, value = match.group(3), match.group(4)
        number = seen.setdefault((key, value), sum(1 for k, _ in seen if k == key) + 1)
        return f'"{key}":"rater-{number}"'

    return _ID_FIELDS.sub(ordinal, data.decode("utf-8")).encode("utf-8")


def write(**kwargs) -> tuple[bytes, dict]:
    out = io.BytesIO()
    kwargs.setdefault("filters", {})
    kwargs.setdefault("name", "preferences")
    manifest = export_preferences_write(out=out, **kwargs)
    return out.getvalue(), manifest


def rows(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


@pytest.mark.django_db
def test_output_matches_golden_file(export_data):
    data, manifest = write()
    assert normalize_ids(data) == GOLDEN.read_bytes()
    assert manifest["rows"] == 10
    assert manifest["skipped"]["ties"] == 2  # the pair tie, and A = D inside the ranking


@pytest.mark.django_db
def test_a_b_mapping_follows_shown_order_and_sign(export_data):
    by_judgment = {row["judgment_id"]: row for row in rows(write()[0])}
    j = export_data.judgments

    a_much_better = by_judgment[j["a_much_better"].pk]
    assert (a_much_better["chosen"][0]["content"], a_much_better["rejected"][0]["content"]) == (
        "Paris.",
        "Lyon.",
    )
    assert a_much_better["margin"] == 3.0

    b_better = by_judgment[j["b_better"].pk]
    assert (b_better["chosen"][0]["content"], b_better["rejected"][0]["content"]) == ("Blue.", "Green.")
    assert b_better["margin"] == 1.0

    # Label A was the comparison's *second* candidate: "A better" must pick it, not position 0.
    swapped = by_judgment[j["swapped"].pk]
    assert swapped["chosen"] == [{"role": "assistant", "content": "Two plus two is four."}]
    assert swapped["rejected"] == [{"role": "assistant", "content": "Two plus two is five."}]

    multi = by_judgment[j["multi_turn"].pk]
    assert [m["role"] for m in multi["prompt"]] == ["system", "user", "assistant", "user"]
    assert multi["margin"] == 2.0

    assert j["tie"].pk not in by_judgment
    # The K=4 ranking [[B], [A, D], [C]] (labels = stored order One, Two, Three, Four): 5 pairs,
    # the tied A = D left out, margins = groups apart.
    ranking_rows = [r for r in rows(write()[0]) if r["ranking_id"] == j["ranking"].pk]
    pairs = {(r["chosen"][0]["content"], r["rejected"][0]["content"]): r["margin"] for r in ranking_rows}
    assert pairs == {
        ("Two.", "One."): 1.0,
        ("Two.", "Four."): 1.0,
        ("Two.", "Three."): 2.0,
        ("One.", "Three."): 1.0,
        ("Four.", "Three."): 1.0,
    }


@pytest.mark.django_db
def test_row_shape_and_provenance(export_data, rater, rater2):
    data, _ = write(name="ds-one")
    lines = data.decode("utf-8").splitlines()
    for line in lines:
        row = json.loads(line)
        assert tuple(row) == TRL_COLUMNS
        assert isinstance(row["margin"], float)
        assert row["ranking_id"] is None or row["ranking_id"] == export_data.judgments["ranking"].pk
        assert isinstance(row["prompt_id"], str)
        assert isinstance(row["comparison_id"], int)
        assert rater.username not in line and rater2.username not in line
        assert line == json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    assert "café" in data.decode("utf-8")  # not escaped to \u00e9

    raters = {row["judgment_id"]: row["rater_id"] for row in rows(data)}
    j = export_data.judgments
    assert (
        raters[j["a_much_better"].pk]
        == raters[j["multi_turn"].pk]
        == rater_pseudonym(user_id=rater.pk, name="ds-one")
    )
    assert raters[j["b_better"].pk] == rater_pseudonym(user_id=rater2.pk, name="ds-one")
    assert raters[j["a_much_better"].pk] != raters[j["b_better"].pk]
    # Stable within a dataset name, different across names.
    assert rows(write(name="ds-one")[0]) == rows(data)
    assert rater_pseudonym(user_id=rater.pk, name="ds-two") != raters[j["a_much_better"].pk]


@pytest.mark.django_db
def test_second_export_is_byte_identical(export_data, tmp_path):
    first = export_preferences_write_file(path=tmp_path / "a.jsonl", filters={}, name="preferences")
    second = export_preferences_write_file(path=tmp_path / "b.jsonl", filters={}, name="preferences")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert first["sha256"] == second["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl"]  # no temp files left


@pytest.mark.django_db
def test_queue_and_time_filters(export_data):
    j = export_data.judgments
    everything = {row["judgment_id"] for row in rows(write()[0])}
    assert j["other_queue"].pk in everything

    only_other, manifest = write(filters={"queues": [export_data.other_queue.pk]})
    assert [row["judgment_id"] for row in rows(only_other)] == [j["other_queue"].pk]
    assert manifest["filters"] == {"queues": [export_data.other_queue.pk]}
    assert manifest["skipped"]["ties"] == 0

    from labeling.models import Judgment

    Judgment.objects.filter(pk=j["a_much_better"].pk).update(created_at="2024-01-01T00:00:00Z")
    Judgment.objects.filter(pk=j["b_better"].pk).update(created_at="2024-06-01T00:00:00Z")
    window, manifest = write(filters={"since": "2024-01-01", "until": "2024-06-01T00:00:00+00:00"})
    assert [row["judgment_id"] for row in rows(window)] == [j["a_much_better"].pk]
    assert manifest["filters"] == {"since": "2024-01-01T00:00:00+00:00", "until": "2024-06-01T00:00:00+00:00"}


@pytest.mark.django_db
def test_query_count_does_not_grow_with_rows(export_data, django_assert_max_num_queries):
    # The judgments, then the chunk's prompts, its comparisons' members and their candidates,
    # whatever the row count.
    with django_assert_max_num_queries(4):
        data, _ = write()
    assert len(rows(data)) == 10


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"queue": [1]}, "filters.queue"),
        ({"queues": ["x"]}, "filters.queues"),
        ({"queues": [True]}, "filters.queues"),
        ({"queues": []}, "filters.queues"),
        ({"queues": [987654]}, "filters.queues"),
        ({"since": "yesterday"}, "filters.since"),
        ({"until": 5}, "filters.until"),
        ({"since": "2024-02-01", "until": "2024-01-01"}, "filters.until"),
        (["queues"], "filters"),
    ],
)
@pytest.mark.django_db
def test_bad_filters_are_named(filters, field):
    out = io.BytesIO()
    with pytest.raises(ApplicationError) as excinfo:
        export_preferences_write(out=out, filters=filters, name="preferences")
    assert excinfo.value.field == field
    assert excinfo.value.status_code == 400
    assert out.getvalue() == b""


@pytest.mark.django_db
def test_failed_write_leaves_nothing(export_data, tmp_path):
    # A pair judgment whose shown order names a candidate outside its comparison.
    assignment = export_data.judgments["b_better"].assignment
    assignment.shown_order = [assignment.shown_order[0], 999999]
    assignment.save()
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"previous\n")
    from export.records import ExportDataError

    with pytest.raises(ExportDataError, match=f"judgment {export_data.judgments['b_better'].pk}"):
        export_preferences_write_file(path=target, filters={}, name="preferences")
    assert target.read_bytes() == b"previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
