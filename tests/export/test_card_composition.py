"""The dataset card's composition (``export.composition``): judgments, raters, the largest share of
one rater overall and per prompt tag, and the agreement per tag as the majority share; the same
numbers in the manifest, from the columnar path and the record path alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.formats import TrlView
from export.services import export_snapshot_write
from export.spec import export_spec_clean
from labeling.models import Assignment
from tests.factories import (
    AssignmentFactory,
    JudgmentFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    make_pair,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tagged():
    """Four comparisons (preferences by raters r0..r3; - = A better):

    politics          r0 -2, r1 -1, r2 +1   majority share 2/3
    politics, health  r0 -1, r1 -3          1
    (no tag)          r0 +2                 (one judgment)
    health            r0 -1, r1 0, r2 +1, r3 +1   2/4
    """
    raters = [RaterFactory() for _ in range(4)]
    queue = QueueFactory()
    for i, (tags, votes) in enumerate(
        [
            (["politics"], [-2, -1, 1]),
            (["politics", "health"], [-1, -3]),
            ([], [2]),
            (["health"], [-1, 0, 1, 1]),
        ]
    ):
        prompt = PromptFactory(external_id=f"p{i}", tags=tags)
        item = QueueItemFactory(queue=queue, comparison=make_pair(prompt, texts=(f"A{i}.", f"B{i}.")))
        for rater, preference in zip(raters, votes, strict=False):
            assignment = AssignmentFactory(item=item, rater=rater, status=Assignment.Status.SUBMITTED)
            JudgmentFactory(assignment=assignment, preference=preference)
    return raters


def _export(tmp_path: Path, name: str, fmt: str, aggregation: str = "raw", **filters) -> tuple[dict, str]:
    spec = export_spec_clean(
        name="composition", format=fmt, aggregation=aggregation, filters=filters, options={"files": ["jsonl"]}
    )
    manifest = export_snapshot_write(spec=spec, folder=tmp_path / name)
    return manifest, (tmp_path / name / "README.md").read_text(encoding="utf-8")


EXPECTED = {
    "judgments": 10,
    "raters": 4,
    "largest_rater_share": 0.4,
    "untagged": 1,
    "agreement_measure": "majority share",
    "tags": {
        "health": {
            "judgments": 6,
            "raters": 4,
            "largest_rater_share": 0.3333,
            "agreement": {"mean": 0.75, "comparisons": 2},
        },
        "politics": {
            "judgments": 5,
            "raters": 3,
            "largest_rater_share": 0.4,
            "agreement": {"mean": 0.8333, "comparisons": 2},
        },
    },
}


def test_the_card_and_manifest_give_the_composition_per_tag(tagged, tmp_path):
    manifest, card = _export(tmp_path, "trl", "trl")
    assert manifest["composition"] == EXPECTED
    assert "## Composition" in card
    assert "10 judgments by 4 raters; the most one rater gave: 40% of them." in card
    assert "untagged: 1" in card and "Agreement is the majority share (what `min_agreement` tests" in card
    assert "| `health` | 6 | 4 | 33.33% | 0.75 over 2 comparisons |" in card
    assert "| `politics` | 5 | 3 | 40% | 0.8333 over 2 comparisons |" in card


def test_every_export_path_counts_the_same_composition(tagged, tmp_path, monkeypatch):
    """Columnar (raw trl), the record path (native, and trl forced onto it), pooled (majority)."""
    assert _export(tmp_path, "native", "native")[0]["composition"] == EXPECTED
    assert _export(tmp_path, "majority", "trl", aggregation="majority")[0]["composition"] == EXPECTED
    columnar_card = _export(tmp_path, "columnar", "trl")[1]
    monkeypatch.setattr(TrlView, "columnar", property(lambda self: False))
    manifest, record_card = _export(tmp_path, "record", "trl")
    assert manifest["composition"] == EXPECTED and record_card == columnar_card


def test_the_composition_counts_only_the_comparisons_kept(tagged, tmp_path):
    """min_agreement 0.6 drops the health-only comparison (majority share 0.5)."""
    composition = _export(tmp_path, "kept", "trl", min_agreement=0.6)[0]["composition"]
    assert composition["judgments"] == 6 and composition["untagged"] == 1
    assert composition["tags"]["health"] == {
        "judgments": 2,
        "raters": 2,
        "largest_rater_share": 0.5,
        "agreement": {"mean": 1.0, "comparisons": 1},
    }
    assert composition["tags"]["politics"]["judgments"] == 5
