"""Aggregation ``adjudicated`` and ``exclude_paused_raters`` with the quality steps behind them:
a reviewer's final label (recorded through the review API) decides a contested pair's row, the
majority decides the others, and judgments of a rater paused from the queue are left out.

Worked example: three raters judge the pair ("one", "two") 2 to 1 for "one"; a reviewer decides
for "two" (+2 in stored order). The adjudicated row has "two" chosen, margin 2, agreement 1/3
(one vote of three agrees with the review) and ``adjudicated`` true. An unreviewed pair judged
2 to 1 has its majority row (``adjudicated`` false), as ``majority`` gives it.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from export.services import export_snapshot_write
from export.spec import export_spec_clean
from labeling.models import Queue, QueueItem, RaterQueuePause, User
from labeling.services.pauses import rater_queue_pause_lift
from tests.export.test_aggregation import _pair, _vote
from tests.factories import (
    CandidateFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    ResearcherFactory,
    UserFactory,
    make_comparison,
)

pytestmark = pytest.mark.django_db


def _rows(tmp_path: Path, name: str, **request) -> tuple[list[dict], dict]:
    spec = export_spec_clean(name="adj", **request, options={"test_fraction": 0.0})
    folder = tmp_path / name
    manifest = export_snapshot_write(spec=spec, folder=folder)
    rows = [json.loads(line) for path in sorted(folder.glob("**/*.jsonl")) for line in path.open()]
    return rows, manifest


def _settle_counters() -> None:
    """The factories write judgments without the services: recount the items' counters."""
    with contextlib.suppress(CommandError):  # it reports what it recounted (and the factories'
        call_command("check_integrity", "--fix", stdout=io.StringIO())  # unfrozen rubric), exits 1


def _content(value) -> str:
    return value[0]["content"] if isinstance(value, list) else value


@pytest.fixture
def contested(db):
    queue = QueueFactory(kind=Queue.Kind.PAIRWISE, overlap=3)
    reviewed = _pair("capital", [-2, -1, 2], queue)  # 2 to 1 for "capital one"
    plain = _pair("river", [-1, -1, 1], queue)  # 2 to 1 for "river one", never reviewed
    _settle_counters()
    reviewer = UserFactory(role=User.Role.REVIEWER)
    item = QueueItem.objects.get(queue=queue, comparison__prompt__external_id="p-capital")
    api = APIClient()
    api.force_authenticate(reviewer)
    response = api.post(
        f"/api/v1/queue-items/{item.pk}/review/", {"preference": 2, "note": "two is right"}, format="json"
    )
    assert response.status_code == 201, response.content
    return {"queue": queue, "reviewed": reviewed, "plain": plain}


def test_the_reviewers_label_decides_and_the_majority_decides_the_rest(contested, tmp_path):
    rows, manifest = _rows(tmp_path, "adj", format="trl", aggregation="adjudicated")
    by_prompt = {_content(r["chosen"]).split()[0]: r for r in rows}
    capital, river = by_prompt["capital"], by_prompt["river"]
    assert _content(capital["chosen"]) == "capital two" and _content(capital["rejected"]) == "capital one"
    assert (capital["margin"], capital["n_judgments"], capital["agreement"], capital["adjudicated"]) == (
        2.0,
        3,
        round(1 / 3, 4),
        True,
    )
    assert _content(river["chosen"]) == "river one" and river["adjudicated"] is False
    # The unreviewed row is exactly the majority row.
    majority, _ = _rows(tmp_path, "maj", format="trl", aggregation="majority")
    river_majority = next(r for r in majority if _content(r["chosen"]).startswith("river"))
    assert {k: v for k, v in river.items() if k != "adjudicated"} == river_majority
    assert "adjudicated" not in river_majority
    assert manifest["aggregation"] == "adjudicated"


def test_a_reviewed_ranking_gives_each_of_its_pairs_the_reviewers_order(tmp_path):
    queue = QueueFactory(kind=Queue.Kind.RANKING, overlap=3)
    prompt = PromptFactory(external_id="p-rank", messages=[{"role": "user", "content": "Rank"}])
    generator = GeneratorFactory()
    a, b, c = (
        CandidateFactory(prompt=prompt, generator=generator, sample_index=i, text=t)
        for i, t in enumerate(["rank a", "rank b", "rank c"])
    )
    comparison = make_comparison(prompt, [a, b, c])
    for _ in range(2):  # both raters: A > B > C, shown in stored order
        _vote(queue, comparison, shown=[a, b, c], ranking=[["A"], ["B"], ["C"]])
    _settle_counters()
    item = QueueItem.objects.get(queue=queue, comparison=comparison)
    api = APIClient()
    api.force_authenticate(UserFactory(role=User.Role.ADMIN))
    response = api.post(f"/api/v1/queue-items/{item.pk}/review/", {"ranking": [[2], [0, 1]]}, format="json")
    assert response.status_code == 201, response.content
    rows, manifest = _rows(tmp_path, "rank", format="trl", aggregation="adjudicated")
    pairs = {(_content(r["chosen"]), _content(r["rejected"])): r["margin"] for r in rows}
    # c over a and b (one group apart); a and b tied by the reviewer: no row.
    assert pairs == {("rank c", "rank a"): 1.0, ("rank c", "rank b"): 1.0}
    assert manifest["skipped"]["ties"] == 1


def test_the_api_accepts_adjudicated_for_pair_views_only(contested):
    api = APIClient()
    api.force_authenticate(ResearcherFactory())
    bad = api.post(
        "/api/v1/exports/", {"name": "x", "format": "native", "aggregation": "adjudicated"}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["field"] == "aggregation"
    estimate = api.post(
        "/api/v1/exports/estimate/",
        {"name": "x", "format": "trl", "aggregation": "adjudicated"},
        format="json",
    )
    assert estimate.status_code == 200, estimate.content


def test_native_marks_reviewed_comparisons(contested, tmp_path):
    rows, _ = _rows(tmp_path, "native", format="native")
    marked = {r["prompt"][0]["content"]: r["adjudicated"] for r in rows}
    assert marked == {"capital": True, "river": False}


def test_paused_raters_are_left_out_with_the_deactivated(contested, tmp_path):
    queue = contested["queue"]
    river_item = QueueItem.objects.get(queue=queue, comparison__prompt__external_id="p-river")
    dissenter = river_item.assignments.order_by("id").last().rater  # the one vote for "river two"
    pause = RaterQueuePause.objects.create(
        queue=queue,
        rater=dissenter,
        reason="Gold accuracy 0% (0 of 10 gold items right) is under 80%",
        gold_answered=10,
        gold_correct=0,
        accuracy=0.0,
        min_accuracy=0.8,
        created_at=timezone.now(),
    )
    rows, manifest = _rows(
        tmp_path, "paused", format="trl", aggregation="majority", filters={"exclude_paused_raters": True}
    )
    river = next(r for r in rows if _content(r["chosen"]).startswith("river"))
    assert (river["n_judgments"], river["agreement"]) == (2, 1.0)
    assert manifest["judgments"] == 5 and manifest["skipped"]["judgments_of_paused_raters"] == 1
    card = (tmp_path / "paused" / "README.md").read_text()
    assert '"judgments_of_paused_raters": 1' in card
    # Lifted: the rater's judgments count again.
    rater_queue_pause_lift(pause=pause, by=UserFactory(role=User.Role.ADMIN), note="retrained")
    _, manifest = _rows(
        tmp_path, "lifted", format="trl", aggregation="majority", filters={"exclude_paused_raters": True}
    )
    assert manifest["judgments"] == 6 and manifest["skipped"]["judgments_of_paused_raters"] == 0
