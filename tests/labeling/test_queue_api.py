"""Queue engine over HTTP: queue options, adding items later, gold items, fresh leases, stats, dashboards."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling.models import Assignment, Queue, QueueItem
from labeling.selectors import comparison_orders
from tests.factories import (
    CandidateFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RubricFactory,
    make_pair,
)

pytestmark = pytest.mark.django_db


def _prompts_with_candidates(n, k=3, tag="t"):
    generator = GeneratorFactory()
    prompts = []
    for _ in range(n):
        prompt = PromptFactory(tags=[tag])
        for i in range(k):
            CandidateFactory(prompt=prompt, generator=generator, sample_index=i)
        prompts.append(prompt)
    return prompts


def test_create_queue_with_engine_options(admin_api, rater):
    rubric = RubricFactory()
    exam = QueueFactory(gold_rate=1.0)
    _prompts_with_candidates(2)
    response = admin_api.post(
        "/api/v1/queues/",
        {
            "name": "engine",
            "rubric": str(rubric.pk),
            "tags": ["t"],
            "pairing": "adaptive",
            "overlap": 3,
            "gold_rate": 0.1,
            "skip_policy": "later",
            "max_open_leases": 2,
            "qualification": exam.pk,
            "qualification_min_items": 4,
            "members": [rater.username],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["pairing"], body["skip_policy"], body["max_open_leases"], body["qualification"]) == (
        "adaptive",
        "later",
        2,
        exam.pk,
    )
    queue = Queue.objects.get(name="engine")
    assert queue.items.count() == 6
    # adaptive queues are ordered by uncertainty from the start: all equal before any judgment
    assert len(set(queue.items.values_list("priority", flat=True))) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"skip_policy": "sometimes"}, "skip_policy"),
        ({"gold_rate": 2}, "gold_rate"),
        ({"qualification": 99999}, "qualification"),
    ],
)
def test_queue_option_errors_name_the_field(admin_api, change, field):
    _prompts_with_candidates(1)
    payload = {"name": "bad", "rubric": str(RubricFactory().pk), "tags": ["t"], **change}
    response = admin_api.post("/api/v1/queues/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Queue.objects.filter(name="bad").exists()


def test_adding_prompts_later_keeps_existing_items(admin_api, rater_api, rater):
    first = _prompts_with_candidates(1, tag="a")
    queue = QueueFactory(members=[rater])
    from labeling.services import queue_add_prompts

    queue_add_prompts(queue=queue, prompts=first)
    held = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    before = list(QueueItem.objects.filter(queue=queue).values_list("id", "claimed", "priority"))
    _prompts_with_candidates(2, tag="b")
    response = admin_api.post(f"/api/v1/queues/{queue.pk}/items/", {"tags": ["a", "b"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["added"] == 6
    after = {
        row[0]: row for row in QueueItem.objects.filter(queue=queue).values_list("id", "claimed", "priority")
    }
    assert all(after[row[0]] == row for row in before)
    assert Assignment.objects.get(pk=held["id"]).status == "leased"


def test_gold_items_and_accuracy_on_stats(admin_api, rater_api, rater):
    queue = QueueFactory(members=[rater], gold_rate=1.0)
    comparison = make_pair(texts=("Right answer.", "Wrong answer."))
    response = admin_api.post(
        f"/api/v1/queues/{queue.pk}/gold/",
        {"items": [{"comparison": comparison.pk, "preference": -3}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["gold"] == 1
    QueueItemFactory(queue=queue)
    assignment = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    assert {r["text"] for r in assignment["responses"]} == {"Right answer.", "Wrong answer."}
    right_label = next(r["label"] for r in assignment["responses"] if r["text"] == "Right answer.")
    rater_api.post(
        f"/api/v1/assignments/{assignment['id']}/judgment/",
        {"preference": -2 if right_label == "A" else 2},
        format="json",
    )
    stats = admin_api.get(f"/api/v1/queues/{queue.pk}/stats/").json()
    assert stats["raters"][0]["gold_accuracy"] == 1.0
    assert stats["progress"]["gold_items"] == 1


def test_gold_errors_name_the_item(admin_api):
    queue = QueueFactory()
    response = admin_api.post(
        f"/api/v1/queues/{queue.pk}/gold/", {"items": [{"comparison": 12345, "preference": 1}]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "items[0].comparison"
    response = admin_api.post(
        f"/api/v1/queues/{queue.pk}/gold/", {"items": [{"comparison": 1, "preference": 9}]}, format="json"
    )
    assert response.json()["field"] == "items[0].preference"


def test_fresh_next_up_to_max_open_leases(rater_api, rater):
    queue = QueueFactory(members=[rater], max_open_leases=2)
    for _ in range(3):
        QueueItemFactory(queue=queue)
    first = rater_api.post(f"/api/v1/queues/{queue.pk}/next/", {}, format="json")
    second = rater_api.post(f"/api/v1/queues/{queue.pk}/next/", {"fresh": True}, format="json")
    third = rater_api.post(f"/api/v1/queues/{queue.pk}/next/", {"fresh": True}, format="json")
    assert (first.status_code, second.status_code, third.status_code) == (201, 201, 409)
    assert first.json()["id"] != second.json()["id"]


def test_stats_agreement_and_dashboards(admin_user, researcher_api, rater, rater2):
    queue = QueueFactory(members=[rater, rater2], overlap=2)
    item = QueueItemFactory(queue=queue)
    canonical = comparison_orders([item.comparison_id])[item.comparison_id]
    from labeling.services import assignment_claim_next, judgment_submit

    for user in (rater, rater2):
        a = assignment_claim_next(rater=user, queue=queue)
        first_is_a = a.shown_order[0] == canonical[0]
        judgment_submit(assignment=a, preference=-1 if first_is_a else 1)  # both: first candidate better
    stats = researcher_api.get(f"/api/v1/queues/{queue.pk}/stats/").json()
    assert stats["overall_agreement"] == 1.0
    assert stats["progress"]["percent"] == 100.0
    client = Client()
    client.force_login(admin_user)
    assert b"100.0%" in client.get("/manage/queues/").content
    page = client.get(f"/manage/queues/{queue.pk}/")
    assert page.status_code == 200 and b"<svg" in page.content and b"100%" in page.content
    rater_client = Client()
    rater_client.force_login(rater)
    assert rater_client.get(f"/manage/queues/{queue.pk}/").status_code == 403


def test_next_and_judgment_endpoints_query_counts(api, rater, django_assert_max_num_queries):
    from tests.factories import api_key_for

    queue = QueueFactory(members=[rater])
    for _ in range(3):
        QueueItemFactory(queue=queue)
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_key_for(rater)}")
    first = api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    api.post(f"/api/v1/assignments/{first['id']}/judgment/", {"preference": 1}, format="json")
    # token, queue, claim (see the service test), candidates, criteria
    with django_assert_max_num_queries(11):
        body = api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    # token, gatekeeper, assignment status, insert, item (+ savepoints)
    with django_assert_max_num_queries(7):
        response = api.post(f"/api/v1/assignments/{body['id']}/judgment/", {"preference": -1}, format="json")
    assert response.status_code == 201


def test_create_queue_with_wellbeing_settings(admin_api):
    rubric = RubricFactory()
    _prompts_with_candidates(1)
    base = {"rubric": str(rubric.pk), "tags": ["t"]}
    response = admin_api.post(
        "/api/v1/queues/",
        {**base, "name": "hard", "disturbing": True, "daily_cap": 50, "break_after": 20},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["disturbing"], body["daily_cap"]) == (True, 50)
    queue = Queue.objects.get(name="hard")
    assert (queue.disturbing, queue.daily_cap, queue.break_after) == (True, 50, 20)
    plain = admin_api.post("/api/v1/queues/", {**base, "name": "plain"}, format="json")
    assert plain.status_code == 201
    assert Queue.objects.filter(name="plain", disturbing=False, daily_cap=None, break_after=None).exists()
    for field, value in (("daily_cap", 0), ("break_after", -1)):
        bad = admin_api.post("/api/v1/queues/", {**base, "name": "bad", field: value}, format="json")
        assert bad.status_code == 400 and bad.json()["field"] == field, bad.content
    assert not Queue.objects.filter(name="bad").exists()
