"""Aggregated exports (``majority``, ``mean``): pooled per candidate pair, exact strengths, one
meaning of ``agreement``, and cards that ``datasets`` loads without a warning.

Worked examples, each computed by hand in the comments:

* HelpSteer strengths: a mean of +-0.5 is a preference (+-1), never a tie; a majority strength of
  1.5 becomes 2 and 2.5 becomes 3 (half away from zero), and ``aggregated_strength`` keeps the
  exact value, the same number as ``trl``'s ``margin`` for the pair.
* Pooling: the same two responses judged in a pairwise queue and inside a K=3 ranking in a
  ranking queue are one row whose ``n_judgments`` counts every vote, direction-corrected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest

from comparisons.models import Candidate, Comparison
from export.formats.pairs import helpsteer_strength
from export.services import export_snapshot_write
from export.spec import export_spec_clean
from labeling.models import Assignment, Queue, QueueItem
from tests.export.test_trl_datasets import STRICT, hf  # noqa: F401 (a fixture)
from tests.factories import (
    AssignmentFactory,
    CandidateFactory,
    GeneratorFactory,
    JudgmentFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    make_comparison,
    make_pair,
)


def _vote(queue: Queue, comparison: Comparison, *, shown: list[Candidate], preference=None, ranking=None):
    """One judgment by a new rater, with the candidates shown in ``shown`` order (label A first)."""
    item = QueueItem.objects.filter(queue=queue, comparison=comparison).first() or QueueItemFactory(
        queue=queue, comparison=comparison
    )
    assignment = AssignmentFactory(
        item=item,
        rater=RaterFactory(),
        status=Assignment.Status.SUBMITTED,
        shown_order=[c.pk for c in shown],
    )
    return JudgmentFactory(assignment=assignment, preference=preference, ranking=ranking)


def _pair(text: str, votes: list[int], queue: Queue) -> tuple[Candidate, Candidate]:
    """A pair ``(<text> one, <text> two)`` with one vote each, in stored positions (negative = one)."""
    comparison = make_pair(
        PromptFactory(external_id=f"p-{text}", messages=[{"role": "user", "content": text}]),
        texts=(f"{text} one", f"{text} two"),
    )
    one, two = (m.candidate for m in comparison.members.order_by("position"))
    for i, vote in enumerate(votes):
        # Every other rater saw the pair swapped: their label A is "two", so the stored sign flips.
        swapped = i % 2 == 1
        _vote(
            queue,
            comparison,
            shown=[two, one] if swapped else [one, two],
            preference=-vote if swapped else vote,
        )
    return one, two


def _write(tmp_path: Path, name: str, **request) -> tuple[Path, dict]:
    options = {"test_fraction": 0.0, **request.pop("options", {})}
    spec = export_spec_clean(name="agg", **request, options=options)
    folder = tmp_path / name
    return folder, export_snapshot_write(spec=spec, folder=folder)


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "data" / "train.jsonl").read_text().splitlines()]


def test_helpsteer_strength_rounds_half_away_from_zero_and_never_to_a_tie():
    assert [helpsteer_strength(s) for s in (0.5, -0.5, 1.5, 2.5, -2.5, 0.25, -0.3333, 0.0, 3.0, 1.4999)] == [
        1,
        -1,
        2,
        3,
        -3,
        1,
        -1,
        0,
        3,
        1,
    ]


@pytest.fixture
def strengths():
    queue = cast(Queue, QueueFactory(name="strengths"))
    return {
        # mean (+1 + 0) / 2 = +0.5: "two" better; majority: +1 wins alone (its mean 1.0)
        "half-up": _pair("half-up", [1, 0], queue),
        # mean (-1 + 0) / 2 = -0.5: "one" better
        "half-down": _pair("half-down", [-1, 0], queue),
        # majority: +1 and +2 win, mean strength 1.5; mean (1 + 2) / 2 = 1.5
        "one-and-a-half": _pair("one-and-a-half", [1, 2], queue),
        # majority: +2 and +3 win, mean strength 2.5
        "two-and-a-half": _pair("two-and-a-half", [2, 3], queue),
        # +1 against -1: a real tie under both aggregations
        "tie": _pair("tie", [1, -1], queue),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "aggregation,expected",
    [
        (
            "mean",
            {
                "half-up": (1, 0.5),
                "half-down": (-1, -0.5),
                "one-and-a-half": (2, 1.5),
                "two-and-a-half": (3, 2.5),
            },
        ),
        (
            "majority",
            {
                "half-up": (1, 1.0),
                "half-down": (-1, -1.0),
                "one-and-a-half": (2, 1.5),
                "two-and-a-half": (3, 2.5),
            },
        ),
    ],
)
def test_helpsteer_aggregates_keep_preferences_and_match_trl(strengths, tmp_path, aggregation, expected):
    folder, manifest = _write(tmp_path, "hs", format="helpsteer", aggregation=aggregation)
    rows = {r["prompt"]: r for r in _rows(folder)}
    assert "aggregated_strength" in manifest["columns"]
    for prompt, (strength, exact) in expected.items():
        row = rows[prompt]
        assert (row["response_1"], row["response_2"]) == (f"{prompt} one", f"{prompt} two")
        assert (row["preference_strength"], row["aggregated_strength"]) == (strength, exact), prompt
        assert row["n_judgments"] == 2
    assert rows["tie"]["preference_strength"] == 0 and rows["tie"]["aggregated_strength"] == 0.0
    assert sum(1 for r in rows.values() if r["preference_strength"] == 0) == 1  # only the real tie
    assert "rounded half away from zero" in (folder / "README.md").read_text()

    # trl's margin for the same pair is the exact strength, chosen on its side.
    trl_folder, _ = _write(tmp_path, "trl", format="trl", aggregation=aggregation)
    trl = {r["prompt"][0]["content"]: r for r in _rows(trl_folder)}
    assert "tie" not in trl  # ties are left out of trl
    for prompt, (_, exact) in expected.items():
        assert trl[prompt]["margin"] == abs(exact)
        winner = f"{prompt} one" if exact < 0 else f"{prompt} two"
        assert trl[prompt]["chosen"] == [{"role": "assistant", "content": winner}]
        assert trl[prompt]["comparison_id"] == rows[prompt]["comparison_id"]


@pytest.mark.django_db
def test_raw_helpsteer_is_unchanged_by_the_rounding(strengths, tmp_path):
    folder, manifest = _write(tmp_path, "raw", format="helpsteer")
    assert "aggregated_strength" not in manifest["columns"]
    # One row per judgment, response_1 the response its rater saw first (the second saw it swapped).
    rows = [r for r in _rows(folder) if r["prompt"] == "two-and-a-half"]
    assert [(r["response_1"], r["preference_strength"]) for r in rows] == [
        ("two-and-a-half one", 2),
        ("two-and-a-half two", -3),
    ]


@pytest.fixture
def cross_queue():
    """The same two responses, "Paris." and "Lyon.", judged in a pairwise queue and inside rankings.

    pairwise queue, comparison (Paris, Lyon):            Paris > Lyon (-2), Lyon > Paris (+1, shown
                                                          swapped: label A = Lyon, preference -1)
    ranking queue, comparison (Nice, Lyon, Paris):        [[Paris], [Nice], [Lyon]] -> Paris over
                                                          Lyon by 2 groups; [[Paris, Lyon], [Nice]]
                                                          -> Paris = Lyon (a tie vote)
    Pooled, direction-corrected (negative = Paris, the pair comparison's first): -2, +1, -2, 0.
    majority: Paris wins 2 votes to 1, strength mean(2, 2) = 2.0, agreement 2 / 4 = 0.5.
    mean: (-2 + 1 - 2 + 0) / 4 = -0.75 -> Paris, margin 0.75, agreement 2 / 4 = 0.5.
    """
    prompt = PromptFactory(external_id="p-city", messages=[{"role": "user", "content": "A city in France?"}])
    generator = GeneratorFactory()
    paris, lyon, nice = (
        cast(Candidate, CandidateFactory(prompt=prompt, generator=generator, sample_index=i, text=t))
        for i, t in enumerate(("Paris.", "Lyon.", "Nice."))
    )
    pairwise = cast(Queue, QueueFactory(name="pairwise"))
    ranking_queue = cast(Queue, QueueFactory(name="rankings", kind="ranking"))
    pair = make_comparison(prompt, [paris, lyon])
    _vote(pairwise, pair, shown=[paris, lyon], preference=-2)
    _vote(pairwise, pair, shown=[lyon, paris], preference=-1)
    triple = make_comparison(prompt, [nice, lyon, paris])
    # Labels follow the shown order: A = Paris, B = Nice, C = Lyon.
    _vote(ranking_queue, triple, shown=[paris, nice, lyon], ranking=[["A"], ["B"], ["C"]])
    _vote(ranking_queue, triple, shown=[paris, nice, lyon], ranking=[["A", "C"], ["B"]])
    return {"pair": pair, "triple": triple, "queues": (pairwise, ranking_queue)}


def _city_rows(folder: Path) -> list[dict]:
    return [
        r
        for r in _rows(folder)
        if {r["chosen"][0]["content"], r["rejected"][0]["content"]} == {"Paris.", "Lyon."}
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("aggregation,margin", [("majority", 2.0), ("mean", 0.75)])
def test_a_pair_judged_in_a_pairwise_and_a_ranking_queue_is_one_pooled_row(
    cross_queue, tmp_path, aggregation, margin
):
    folder, manifest = _write(tmp_path, "pooled", format="trl", aggregation=aggregation)
    rows = _city_rows(folder)
    assert len(rows) == 1
    row = rows[0]
    assert row["chosen"][0]["content"] == "Paris." and row["margin"] == margin
    assert (row["n_judgments"], row["agreement"]) == (4, 0.5)
    assert row["comparison_id"] == cross_queue["pair"].pk  # the first comparison holding both
    assert row["ranking_id"] is None and row["rater_id"] is None and row["judgment_id"] is None
    # The ranking's other pairs have its two votes each: Nice/Paris (Paris twice) is a row,
    # Nice/Lyon (one vote each way) a tie, left out.
    assert manifest["rows"] == 2 and manifest["skipped"]["ties"] == 1
    assert manifest["judgments"] == 4 and manifest["comparisons"] == 2 and manifest["raters"] == 4

    # Byte-identical again.
    _, again = _write(tmp_path, "again", format="trl", aggregation=aggregation)
    assert again["sha256"] == manifest["sha256"]


@pytest.mark.django_db
def test_min_filters_test_each_pooled_pair(cross_queue, tmp_path):
    # Neither comparison has 3 judgments, the pooled Paris/Lyon pair has 4 votes.
    folder, manifest = _write(
        tmp_path, "j3", format="trl", aggregation="majority", filters={"min_judgments": 3}
    )
    assert [r["n_judgments"] for r in _rows(folder)] == [4]
    assert manifest["skipped"]["pairs_below_min_judgments"] == 2  # Nice/Lyon, Nice/Paris: 2 votes each
    # min_agreement is the row's agreement column: 0.5 passes 0.5 and fails 0.6.
    folder, _ = _write(tmp_path, "a5", format="trl", aggregation="majority", filters={"min_agreement": 0.5})
    assert 0.5 in [r["agreement"] for r in _city_rows(folder)]
    folder, manifest = _write(
        tmp_path, "a6", format="trl", aggregation="majority", filters={"min_agreement": 0.6}
    )
    assert _city_rows(folder) == []
    assert all(r["agreement"] >= 0.6 for r in _rows(folder))
    # Paris/Lyon (0.5) and the Nice/Lyon tie (no tie vote: 0.0) are below it.
    assert manifest["skipped"]["pairs_below_min_agreement"] == 2
    card = (folder / "README.md").read_text()
    assert "min_agreement: 0.6 (a row is kept when its `agreement`, the majority share" in card
    # Raw exports keep the per-comparison rule (the card says so).
    _, raw = _write(tmp_path, "raw", format="trl", filters={"min_agreement": 0.6})
    # The pair comparison (0.5) is below it; the ranking's mean over its pairs, (0.5 + 1 + 0.5) / 3, is not.
    assert raw["skipped"]["comparisons_below_min_agreement"] == 1
    assert (
        "min_agreement: 0.6 (a comparison's judgments are kept"
        in (tmp_path / "raw" / "README.md").read_text()
    )


@STRICT
@pytest.mark.django_db
@pytest.mark.parametrize("files", [["jsonl", "parquet"], ["jsonl"]])
def test_card_splits_have_num_bytes_and_load_without_warnings(cross_queue, tmp_path, hf, files):  # noqa: F811
    folder, manifest = _write(
        tmp_path, "card", format="trl", aggregation="majority", options={"test_fraction": 0.5, "files": files}
    )
    card = (folder / "README.md").read_text()
    kind = files[-1]
    for split, n in manifest["splits"].items():
        if n or split == "train":
            size = sum(f["bytes"] for f in manifest["files"] if f["split"] == split and f["kind"] == kind)
            assert f"  - name: {split}\n    num_bytes: {size}\n    num_examples: {n}\n" in card
    ds = hf(folder)
    assert ds["train"].num_rows == manifest["splits"]["train"]


@pytest.mark.django_db
def test_the_strict_loader_fails_on_a_card_without_num_bytes(cross_queue, tmp_path, hf):  # noqa: F811
    folder, _ = _write(tmp_path, "old", format="trl")
    card = folder / "README.md"
    card.write_text("".join(line for line in card.read_text().splitlines(True) if "num_bytes" not in line))
    with pytest.raises(AssertionError, match="num_bytes"):
        hf(folder)


@pytest.mark.django_db
@pytest.mark.urls("tests.export.urls")
def test_the_api_schema_and_the_page_say_what_min_agreement_means(researcher, api):
    from django.test import Client

    schema = json.loads(api.get("/api/schema/", HTTP_ACCEPT="application/json").content)
    filters = schema["components"]["schemas"]["ExportRunCreateInput"]["properties"]["filters"]
    assert "the majority share" in filters["description"]
    assert "not the pairwise agreement between raters" in filters["description"]
    client = Client()
    client.force_login(researcher)
    page = client.get("/export/").content.decode()
    assert "Min majority share (0..1)" in page
    assert "The share of the votes that agree with the majority." in page
    assert "pooling the votes of every comparison that holds both responses" in page
