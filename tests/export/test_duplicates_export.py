"""Exports of comparisons with duplicates (unseen copies of a shown text, tied with it) and of legacy
pairs of identical texts.

A duplicate is listed, tied with its copy, where the candidates are listed (``native``: same
``position``; ``rankings``: in its copy's ``ranking`` group). It adds no pair row (each would repeat
its copy's row byte for byte), and no view writes a pair of identical texts: such a pair (only
comparisons built without dedupe have one) is left out and counted in ``identical_pairs``. The
golden files ``duplicates_*.jsonl`` pin the rows; exports of data without duplicates are unchanged
(the other golden files).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

import pytest

from comparisons.dedupe import same_text
from comparisons.models import Comparison
from comparisons.services import comparisons_build
from export.formats import HhView, TrlView
from labeling.models import Assignment, Judgment, Queue, User
from tests.factories import (
    AssignmentFactory,
    CandidateFactory,
    GeneratorFactory,
    JudgmentFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    make_pair,
)

from .test_trl_datasets import jsonl, normalize, write

GOLDEN = Path(__file__).parent / "golden"
NOTE = "did not see because their text repeats a shown one"

pytestmark = pytest.mark.django_db


def _judge(queue: Queue, comparison: Comparison, rater: User, **answer) -> Judgment:
    item = QueueItemFactory(queue=queue, comparison=comparison)
    order = list(comparison.members.order_by("position").values_list("candidate_id", flat=True))
    assignment = AssignmentFactory(
        item=item, rater=rater, status=Assignment.Status.SUBMITTED, shown_order=order
    )
    return cast(Judgment, JudgmentFactory(assignment=assignment, **answer))


def _prompt(external_id: str, texts: list[str]):
    prompt = PromptFactory(external_id=external_id, messages=[{"role": "user", "content": external_id}])
    generators = [GeneratorFactory(), GeneratorFactory()]
    for i, text in enumerate(texts):
        CandidateFactory(prompt=prompt, generator=generators[i % 2], sample_index=i, text=text)
    return prompt


@pytest.fixture
def dup_data(rater):
    """A K=4 ranking with two duplicates, a pair with one, and a legacy pair of identical texts.

    ranking  shows One. Two. Three. Four. (A..D); "One." and "Four.\\n" copies are not shown.
             Judged [[B], [A, D], [C]]: Two best, One = Four, Three last.
    pair     shows Paris. / Lyon.; a second "Paris. " is not shown. Judged -3 (Paris).
    same     a pair built before dedupe: "Same answer." and "Same  answer.", judged -1.
    """
    queue = QueueFactory(name="dups")
    rank = _prompt("p-rank", ["One.", "One.", "Two.", "Three.", "Four.", "Four.\n"])
    (ranking,) = comparisons_build(prompts=[rank], size=4)
    _judge(queue, ranking, rater, preference=None, ranking=[["B"], ["A", "D"], ["C"]])
    pair_prompt = _prompt("p-pair", ["Paris.", "Paris. ", "Lyon."])
    (pair,) = comparisons_build(prompts=[pair_prompt])
    _judge(queue, pair, rater, preference=-3)
    same = make_pair(
        PromptFactory(external_id="p-same", messages=[{"role": "user", "content": "Same?"}]),
        texts=("Same answer.", "Same  answer."),
    )
    _judge(queue, same, rater, preference=-1)
    return queue


def _rows(tmp_path: Path, request: dict) -> tuple[list[dict], dict]:
    tmp_path.mkdir(exist_ok=True)
    folder, manifest = write(tmp_path, request, name="dups")
    manifest["card"] = (folder / "README.md").read_text(encoding="utf-8")
    return jsonl(folder / "data" / "train.jsonl"), manifest


def _golden(stem: str, rows: list[dict]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in normalize(rows))
    golden = GOLDEN / f"duplicates_{stem}.jsonl"
    if os.environ.get("PREFLAB_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), stem


def test_native_lists_duplicates_in_their_copys_position(dup_data, tmp_path):
    rows, manifest = _rows(tmp_path / "out", {"format": "native"})

    ranking, pair, same = rows
    shown = set(ranking["shown_order"])
    assert [(c["text"], c["position"], c["candidate_id"] in shown) for c in ranking["candidates"]] == [
        ("One.", 0, True),
        ("Two.", 1, True),
        ("Three.", 2, True),
        ("Four.", 3, True),
        ("One.", 0, False),
        ("Four.\n", 3, False),
    ]
    assert [(c["text"], c["position"]) for c in pair["candidates"]] == [
        ("Paris.", 0),
        ("Lyon.", 1),
        ("Paris. ", 0),
    ]
    assert len(same["candidates"]) == 2  # the lossless record keeps what was judged
    assert NOTE in manifest["description"] and NOTE in manifest["card"]
    _golden("native", rows)


def test_rankings_put_duplicates_in_their_copys_group(dup_data, tmp_path):
    rows, manifest = _rows(tmp_path / "out", {"format": "rankings"})

    (row,) = rows  # the pair judgments are left out
    assert [r["text"] for r in row["responses"]] == ["One.", "Two.", "Three.", "Four.", "One.", "Four.\n"]
    assert row["ranking"] == [[1], [0, 3, 4, 5], [2]]
    assert row["shown_order"] == [0, 1, 2, 3]
    assert row["k"] == 6
    assert NOTE in manifest["description"]
    _golden("rankings", rows)


@pytest.mark.parametrize(
    ("request_", "expected_rows", "skipped"),
    [
        ({"format": "trl"}, 6, {"ties": 1, "identical_pairs": 1}),
        ({"format": "hh"}, 6, {"ties": 1, "identical_pairs": 1}),
        ({"format": "helpsteer"}, 7, {"identical_pairs": 1}),
        ({"format": "trl", "aggregation": "majority"}, 6, {"ties": 1, "identical_pairs": 1}),
        ({"format": "rankings", "options": {"pairs": True}}, 5, {"ties": 1, "pair_judgments": 2}),
    ],
    ids=["trl", "hh", "helpsteer", "trl-majority", "rankings-pairs"],
)
def test_pair_views_write_no_pair_of_identical_texts_and_no_row_for_a_duplicate(
    dup_data, tmp_path, request_, expected_rows, skipped
):
    rows, manifest = _rows(tmp_path / "out", request_)

    assert len(rows) == manifest["rows"] == expected_rows
    for key, value in skipped.items():
        assert manifest["skipped"][key] == value, key
    for row in rows:
        first, second = (
            (row["response_1"], row["response_2"])
            if "response_1" in row
            else (row["chosen"], row["rejected"])
        )
        if isinstance(first, list):
            first, second = first[-1]["content"], second[-1]["content"]
        assert not same_text(first, second)
        assert "Same" not in first
    assert NOTE not in manifest["description"]


@pytest.mark.parametrize("format_", ["trl", "hh"])
def test_columnar_path_leaves_out_identical_pairs_like_the_record_path(
    dup_data, tmp_path, monkeypatch, format_
):
    _, columnar = _rows(tmp_path / "columnar", {"format": format_})
    for view in (TrlView, HhView):
        monkeypatch.setattr(view, "columnar", property(lambda self: False))
    _, record = _rows(tmp_path / "record", {"format": format_})

    for manifest in (columnar, record):
        manifest.pop("created_at")
        manifest.pop("card")
    assert columnar == record
    assert record["skipped"]["identical_pairs"] == 1


def test_data_without_duplicates_keeps_its_description(export_data, tmp_path):
    _, manifest = _rows(tmp_path / "out", {"format": "native"})

    assert NOTE not in manifest["description"]
    assert "identical_pairs" not in manifest["skipped"]
