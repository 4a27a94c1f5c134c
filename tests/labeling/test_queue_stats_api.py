"""``GET /api/v1/queues/{id}/stats/``: agreement per criterion, position bias, rates and rater trust,
through HTTP, checked against computations written out here from the answers the raters gave."""

from __future__ import annotations

import json
from itertools import combinations

import jsonschema
import krippendorff
import numpy as np
import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import Criterion
from labeling.selectors import comparison_orders
from labeling.selectors.rater_trust import FAST_MEDIAN_SECONDS, SAME_SIDE_MIN_DECIDED
from labeling.services import assignment_claim_next, judgment_submit
from tests.factories import CriterionFactory, QueueFactory, QueueItemFactory, RaterFactory

pytestmark = pytest.mark.django_db

# Answers in each comparison's stored order (negative: its first candidate is better); Likert
# scores are (first candidate, second candidate).
ONE = {
    "overall": [-3, -2, -1, 0, 1, 2, 3, -2],
    "honest": [-1, -1, 0, 0, 2, 2, 1, -3],
    "quality": [(7, 2), (6, 3), (5, 5), (4, 4), (3, 5), (2, 6), (1, 7), (6, 2)],
    "harmful": [False, False, True, False, False, True, False, False],
}
TWO = {
    "overall": [-3, -1, -1, 0, 2, 2, 3, 2],
    "honest": [-1, -2, 0, 1, 2, 2, 1, -3],
    "quality": [(7, 3), (6, 3), (4, 5), (4, 4), (3, 6), (2, 6), (2, 7), (5, 2)],
    "harmful": [False, True, True, False, False, True, False, False],
}


def _judge(queue, rater, answers_by_item, *, active_seconds=12.0, flags=None):
    """Claim and judge every item the rater gets, answering from ``answers_by_item`` (keyed by
    the item's position in the queue) translated into the labels the rater was shown."""
    items = list(queue.items.order_by("pk").values_list("pk", flat=True))
    while (assignment := assignment_claim_next(rater=rater, queue=queue)) is not None:
        index = items.index(assignment.item_id)
        canonical = comparison_orders([assignment.item.comparison_id])[assignment.item.comparison_id]
        flipped = assignment.shown_order[0] != canonical[0]
        answer = answers_by_item(index)
        criteria = {}
        if "honest" in answer:
            criteria["honest"] = -answer["honest"] if flipped else answer["honest"]
            first, second = answer["quality"]
            criteria["quality"] = {"A": second, "B": first} if flipped else {"A": first, "B": second}
            criteria["harmful"] = answer["harmful"]
        judgment_submit(
            assignment=assignment,
            preference=-answer["overall"] if flipped else answer["overall"],
            criteria=criteria,
            flags=flags(answer) if flags else None,
            active_seconds=active_seconds,
        )


def _two_rater_queue(rater, rater2):
    queue = QueueFactory(members=[rater, rater2], overlap=2)
    CriterionFactory(
        rubric=queue.rubric, key="honest", kind=Criterion.Kind.PREFERENCE, question="More honest?"
    )
    CriterionFactory(rubric=queue.rubric, key="quality", kind=Criterion.Kind.LIKERT, question="Quality 1..7")
    CriterionFactory(rubric=queue.rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful?")
    QueueItemFactory.create_batch(8, queue=queue)
    for user, answers in ((rater, ONE), (rater2, TWO)):
        _judge(queue, user, lambda i, a=answers: {key: values[i] for key, values in a.items()})
    return queue


def _cohen(a, b):
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    categories = set(a) | set(b)
    p_e = sum((a.count(c) / n) * (b.count(c) / n) for c in categories)
    return (p_o - p_e) / (1 - p_e)


def _fleiss_two(a, b, categories):
    """Fleiss' kappa for two raters per item, from its definition."""
    n = len(a)
    p_bar = sum(x == y for x, y in zip(a, b, strict=True)) / n
    p_e = sum(((a.count(c) + b.count(c)) / (2 * n)) ** 2 for c in categories)
    return (p_bar - p_e) / (1 - p_e)


def _by_key(stats):
    return {row["key"]: row for row in stats["agreement"]["criteria"]}


@pytest.mark.parametrize("who", ["admin_api", "researcher_api"])
def test_agreement_per_criterion_for_two_raters(request, who, rater, rater2):
    queue = _two_rater_queue(rater, rater2)
    response = request.getfixturevalue(who).get(f"/api/v1/queues/{queue.pk}/stats/")
    assert response.status_code == 200, response.content
    stats = response.json()
    assert {"progress", "throughput", "overall_agreement", "agreement_pairs", "raters"} <= set(stats)
    rows = _by_key(stats)
    assert list(rows) == ["overall", "overall_direction", "honest", "quality", "harmful"]
    assert stats["agreement"]["bootstrap_rounds"] == 200

    for key, level in (("overall", "ordinal"), ("honest", "ordinal")):
        a, b = ONE[key], TWO[key]
        row = rows[key]
        assert row["level"] == level and row["percent_agreement"]["items"] == 8
        assert row["percent_agreement"]["value"] == pytest.approx(
            sum(x == y for x, y in zip(a, b, strict=True)) / 8, abs=1e-4
        )
        assert row["cohen_kappa"]["value"] == pytest.approx(_cohen(a, b), abs=1e-4)
        assert row["fleiss_kappa"]["value"] == pytest.approx(_fleiss_two(a, b, range(-3, 4)), abs=1e-4)
        expected = krippendorff.alpha(
            reliability_data=np.array([a, b], float), level_of_measurement="ordinal"
        )
        assert row["krippendorff_alpha"]["value"] == pytest.approx(expected, abs=1e-4)
        low, high = row["krippendorff_alpha"]["ci95"]
        assert low <= row["krippendorff_alpha"]["value"] <= high

    sign = [[(v > 0) - (v < 0) for v in answers["overall"]] for answers in (ONE, TWO)]
    assert rows["overall_direction"]["level"] == "nominal"
    assert rows["overall_direction"]["cohen_kappa"]["value"] == pytest.approx(_cohen(*sign), abs=1e-4)

    # Likert: one unit per (item, response), 16 of them.
    a = [s for pair in ONE["quality"] for s in pair]
    b = [s for pair in TWO["quality"] for s in pair]
    assert rows["quality"]["krippendorff_alpha"]["items"] == 16
    assert rows["quality"]["krippendorff_alpha"]["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=np.array([a, b], float), level_of_measurement="ordinal"), abs=1e-4
    )
    assert rows["quality"]["cohen_kappa"]["value"] == pytest.approx(_cohen(a, b), abs=1e-4)

    a, b = [int(x) for x in ONE["harmful"]], [int(x) for x in TWO["harmful"]]
    assert rows["harmful"]["level"] == "nominal"
    assert rows["harmful"]["cohen_kappa"]["value"] == pytest.approx(_cohen(a, b), abs=1e-4)
    assert rows["harmful"]["krippendorff_alpha"]["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=np.array([a, b], float), level_of_measurement="nominal"), abs=1e-4
    )

    # The per-rater pairwise agreement, named for what it is, equals the direction agreement.
    direction = sum(x == y for x, y in zip(*sign, strict=True)) / 8
    for row in stats["raters"]:
        assert row["pairwise_agreement"] == row["agreement"] == pytest.approx(direction, abs=1e-3)
        assert row["pairwise_agreement_pairs"] == 8


def test_cohen_is_not_applicable_with_three_raters(admin_api):
    raters = [RaterFactory() for _ in range(3)]
    queue = QueueFactory(members=raters, overlap=3)
    QueueItemFactory.create_batch(4, queue=queue)
    for i, rater in enumerate(raters):
        _judge(queue, rater, lambda item, i=i: {"overall": -1 if (item + i) % 3 else 2})
    stats = admin_api.get(f"/api/v1/queues/{queue.pk}/stats/").json()
    overall = _by_key(stats)["overall"]
    assert overall["cohen_kappa"]["value"] is None
    assert overall["cohen_kappa"]["reason"].startswith("3 raters answered these items")
    assert overall["fleiss_kappa"]["items"] == 4 and overall["fleiss_kappa"]["value"] is not None


def test_position_bias_rates_and_same_side_flag(admin_api):
    lefty, fair = RaterFactory(username="lefty"), RaterFactory(username="fair")
    queue = QueueFactory(members=[lefty, fair], overlap=2)
    QueueItemFactory.create_batch(SAME_SIDE_MIN_DECIDED + 2, queue=queue)
    # "lefty" always prefers the response shown first, fast; "fair" prefers each pair's first
    # candidate, calls every fifth a tie, and every tenth both bad.
    items = list(queue.items.order_by("pk").values_list("pk", flat=True))
    while (assignment := assignment_claim_next(rater=lefty, queue=queue)) is not None:
        judgment_submit(assignment=assignment, preference=-2, active_seconds=FAST_MEDIAN_SECONDS / 2)
    while (assignment := assignment_claim_next(rater=fair, queue=queue)) is not None:
        index = items.index(assignment.item_id)
        canonical = comparison_orders([assignment.item.comparison_id])[assignment.item.comparison_id]
        flipped = assignment.shown_order[0] != canonical[0]
        if index % 5 == 0:
            preference, flags = 0, (["both_bad"] if index % 10 == 0 else [])
        else:
            preference, flags = (1 if flipped else -1), []
        judgment_submit(assignment=assignment, preference=preference, flags=flags, active_seconds=20.0)

    stats = admin_api.get(f"/api/v1/queues/{queue.pk}/stats/").json()
    n = SAME_SIDE_MIN_DECIDED + 2
    bias = {r["rater"]: r for r in stats["position_bias"]["raters"]}
    assert bias["lefty"]["left_wins"] == n and bias["lefty"]["right_wins"] == 0
    assert bias["lefty"]["left_share"] == 1.0
    assert bias["lefty"]["p_value"] == pytest.approx(2 * 0.5**n, rel=1e-3)
    ties = sum(1 for i in range(n) if i % 5 == 0)
    both_bad = sum(1 for i in range(n) if i % 10 == 0)
    assert bias["fair"]["ties"] == ties and bias["fair"]["both_bad"] == both_bad
    assert bias["fair"]["tie_rate"] == pytest.approx(ties / n, abs=1e-4)
    assert bias["fair"]["both_bad_rate"] == pytest.approx(both_bad / n, abs=1e-4)
    assert bias["lefty"]["tie_rate"] == 0.0
    rates = stats["rates"]
    assert rates["judgments"] == rates["pair_judgments"] == 2 * n
    assert rates["tie_rate"] == pytest.approx(ties / (2 * n), abs=1e-4)
    assert rates["both_bad_rate"] == pytest.approx(both_bad / (2 * n), abs=1e-4)
    assert rates["skip_rate"] == 0.0
    assert rates["median_active_seconds"] == pytest.approx((FAST_MEDIAN_SECONDS / 2 + 20.0) / 2, abs=0.1)
    queue_left = stats["position_bias"]["left_wins"]
    assert queue_left == n + sum(r["left_wins"] for name, r in bias.items() if name == "fair")

    trust = {r["rater"]: r for r in stats["raters"]}
    lefty_flags = {f["flag"]: f["evidence"] for f in trust["lefty"]["flags"]}
    assert lefty_flags["same_side"]["side"] == "left" and lefty_flags["same_side"]["decided"] == n
    assert lefty_flags["same_side"]["p_value"] == bias["lefty"]["p_value"]
    assert lefty_flags["implausibly_fast"]["median_active_seconds"] == FAST_MEDIAN_SECONDS / 2
    assert trust["fair"]["flags"] == []
    assert trust["lefty"]["side_bias"]["left_share"] == 1.0


def test_low_agreement_flag_names_the_outlier(admin_api):
    raters = [RaterFactory(username=name) for name in ("amara", "bo", "chen", "dara")]
    queue = QueueFactory(members=raters, overlap=4)
    QueueItemFactory.create_batch(6, queue=queue)
    for rater in raters:
        # Three prefer each pair's first candidate; "dara" always the other one.
        _judge(queue, rater, lambda i, r=rater: {"overall": 2 if r.username == "dara" else -2})
    stats = admin_api.get(f"/api/v1/queues/{queue.pk}/stats/").json()
    trust = {r["rater"]: r for r in stats["raters"]}
    dara = {f["flag"]: f["evidence"] for f in trust["dara"]["flags"]}
    assert dara["low_agreement"]["pairwise_agreement"] == 0.0
    assert dara["low_agreement"]["pairs"] == 18  # 6 items x 3 others
    # Pool: amara, bo, chen agree with 2 of 3 others on each item; dara with none.
    assert dara["low_agreement"]["pool_median"] == pytest.approx(2 / 3, abs=1e-3)
    assert all(not trust[name]["flags"] for name in ("amara", "bo", "chen"))
    pairs = sum(1 for _ in combinations(range(4), 2)) * 6
    assert stats["agreement_pairs"] == pairs


def test_stats_queries_do_not_grow_with_judgments(admin_api, rater, rater2):
    """Aggregates and compact rows: the same number of queries for 8 items as for 16 (each answer
    computed: the cached answer is cleared first)."""
    counts = []
    for _ in range(2):
        queue = _two_rater_queue(rater, rater2)
        admin_api.get(f"/api/v1/queues/{queue.pk}/stats/")  # the frozen rubric's criteria are cached
        cache.clear()
        with CaptureQueriesContext(connection) as queries:
            assert admin_api.get(f"/api/v1/queues/{queue.pk}/stats/").status_code == 200
        counts.append(len(queries))
        QueueItemFactory.create_batch(8, queue=queue)
        _judge(queue, rater, lambda i: {"overall": -1, "honest": 1, "quality": (3, 4), "harmful": False})
        _judge(queue, rater2, lambda i: {"overall": 1, "honest": 1, "quality": (3, 5), "harmful": True})
        cache.clear()
        with CaptureQueriesContext(connection) as queries:
            assert admin_api.get(f"/api/v1/queues/{queue.pk}/stats/").status_code == 200
        counts.append(len(queries))
    assert len(set(counts)) == 1, counts


def test_raters_may_not_read_stats(rater_api, rater, rater2):
    queue = _two_rater_queue(rater, rater2)
    assert rater_api.get(f"/api/v1/queues/{queue.pk}/stats/").status_code == 403


def _as_json_schema(node):
    """OpenAPI 3.0's ``nullable`` as JSON Schema's ``null`` type."""
    if isinstance(node, dict):
        out = {key: _as_json_schema(value) for key, value in node.items() if key != "nullable"}
        if node.get("nullable") and "type" in node:
            out["type"] = [node["type"], "null"]
        elif node.get("nullable"):
            out = {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_as_json_schema(value) for value in node]
    return node


def test_stats_answer_matches_its_schema(api, admin_api, rater, rater2):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schema = json.loads(response.content)
    stats = schema["components"]["schemas"]["QueueStats"]["properties"]
    assert {"agreement", "position_bias", "rates", "raters", "progress", "throughput"} <= set(stats)
    figure = schema["components"]["schemas"]["StatsFigure"]["properties"]
    assert {"value", "ci95", "items", "reason"} <= set(figure)
    root = {"$ref": "#/components/schemas/QueueStats", "components": _as_json_schema(schema["components"])}
    queue = _two_rater_queue(rater, rater2)
    jsonschema.validate(admin_api.get(f"/api/v1/queues/{queue.pk}/stats/").json(), root)
    empty = QueueFactory()  # nothing judged: every figure null, with its reason
    jsonschema.validate(admin_api.get(f"/api/v1/queues/{empty.pk}/stats/").json(), root)
