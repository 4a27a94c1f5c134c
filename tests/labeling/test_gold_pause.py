"""Rater auto-pause on gold: a rater whose gold accuracy in a queue falls under its threshold
(after the minimum number of gold answers) is paused from that queue in the claim, through both
doors; admins see why and lift it; the pause and the lift are in the audit log; a lifted rater is
paused again only on gold answers given after the lift."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from labeling.models import Assignment, AuditEvent, QueueItem, RaterQueuePause
from labeling.selectors.quality import comparison_orders
from tests.factories import QueueFactory, QueueItemFactory, RaterFactory, ResearcherFactory
from tests.integrity import assert_no_drift

pytestmark = pytest.mark.django_db

GOLD = {"preference": -2}  # position 0 better


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _queue(rater, *, gold_items=8, real_items=4, min_accuracy=0.75, min_items=3):
    queue = QueueFactory(
        gold_rate=1.0, gold_min_accuracy=min_accuracy, gold_min_items=min_items, members=[rater]
    )
    for _ in range(gold_items):
        QueueItemFactory(queue=queue, is_gold=True, gold_answer=GOLD)
    for _ in range(real_items):
        QueueItemFactory(queue=queue)
    return queue


def _answer(client: APIClient, assignment_id: int, *, right: bool) -> None:
    """Answer a gold item right or wrong, translating the stored-order answer to shown labels."""
    assignment = Assignment.objects.select_related("item").get(pk=assignment_id)
    canonical = comparison_orders([assignment.item.comparison_id])[assignment.item.comparison_id]
    stored = -2 if right else 2
    shown = stored if assignment.shown_order[0] == canonical[0] else -stored
    response = client.post(
        f"/api/v1/assignments/{assignment_id}/judgment/", {"preference": shown}, format="json"
    )
    assert response.status_code == 201, response.content


def _next(client: APIClient, queue) -> tuple[int, dict]:
    response = client.post(f"/api/v1/queues/{queue.pk}/next/")
    return response.status_code, (response.json() if response.content else {})


def _work(client: APIClient, queue, *, right: bool, times: int) -> None:
    for _ in range(times):
        code, body = _next(client, queue)
        assert code == 201, body
        assert QueueItem.objects.get(assignments__pk=body["id"]).is_gold
        _answer(client, body["id"], right=right)


def test_under_threshold_after_the_minimum_pauses_the_rater_with_the_evidence():
    rater = RaterFactory()
    queue = _queue(rater)
    client = _api(rater)
    _work(client, queue, right=False, times=2)
    assert not RaterQueuePause.objects.exists(), "two gold answers are under the minimum of three"
    _work(client, queue, right=False, times=1)

    pause = RaterQueuePause.objects.get()
    assert (pause.queue_id, pause.rater_id, pause.lifted_at) == (queue.pk, rater.pk, None)
    assert (pause.gold_answered, pause.gold_correct, pause.accuracy, pause.min_accuracy) == (3, 0, 0.0, 0.75)
    assert "0 of 3 gold items right" in pause.reason and "75%" in pause.reason
    assert AuditEvent.objects.filter(action="rater.pause", object_id=str(pause.pk)).exists()

    code, body = _next(client, queue)  # the API door
    assert code == 403
    assert body["detail"].startswith("You are paused from this queue: Gold accuracy 0% (0 of 3")
    page = Client()
    page.force_login(rater)
    response = page.get(f"/rate/{queue.pk}/")  # the page door
    assert response.status_code == 302 and response.url == "/rate/"
    assert any("You are paused from this queue" in str(m) for m in get_messages(response.wsgi_request))
    assert_no_drift()


def test_an_accurate_rater_and_a_queue_without_threshold_are_never_paused():
    good, careless = RaterFactory(), RaterFactory()
    queue = _queue(good)
    _work(_api(good), queue, right=True, times=3)
    _work(_api(good), queue, right=False, times=1)  # 3 of 4 = 75%: not under 75%
    off = QueueFactory(gold_rate=1.0, gold_min_accuracy=None, members=[careless])
    for _ in range(4):
        QueueItemFactory(queue=off, is_gold=True, gold_answer=GOLD)
    _work(_api(careless), off, right=False, times=4)
    assert not RaterQueuePause.objects.exists()
    assert _next(_api(good), queue)[0] == 201


def test_the_pause_is_per_queue():
    rater = RaterFactory()
    bad_here = _queue(rater)
    elsewhere = QueueFactory(members=[rater])
    QueueItemFactory(queue=elsewhere)
    _work(_api(rater), bad_here, right=False, times=3)
    assert _next(_api(rater), bad_here)[0] == 403
    assert _next(_api(rater), elsewhere)[0] == 201


def test_admins_see_pauses_and_lift_them_and_the_same_evidence_never_pauses_again(admin_user):
    rater = RaterFactory()
    queue = _queue(rater, gold_items=10)
    client = _api(rater)
    _work(client, queue, right=False, times=3)
    pause = RaterQueuePause.objects.get()

    listed = _api(admin_user).get(f"/api/v1/queues/{queue.pk}/pauses/").json()
    assert [(p["id"], p["rater_username"], p["open"], p["gold_answered"]) for p in listed] == [
        (pause.pk, rater.username, True, 3)
    ]
    assert _api(ResearcherFactory()).get(f"/api/v1/queues/{queue.pk}/pauses/").status_code == 200
    assert client.get(f"/api/v1/queues/{queue.pk}/pauses/").status_code == 403
    researcher_lift = _api(ResearcherFactory()).post(f"/api/v1/queues/{queue.pk}/pauses/{pause.pk}/lift/")
    assert researcher_lift.status_code == 403

    page = Client()
    page.force_login(admin_user)
    dashboard = page.get(f"/manage/queues/{queue.pk}/").content.decode()
    assert "Paused raters" in dashboard and escape(pause.reason) in dashboard and "Lift pause" in dashboard

    lifted = _api(admin_user).post(
        f"/api/v1/queues/{queue.pk}/pauses/{pause.pk}/lift/",
        {"note": "retrained on the guidelines"},
        format="json",
    )
    assert lifted.status_code == 200, lifted.content
    assert lifted.json()["open"] is False and lifted.json()["lifted_by"] == admin_user.username
    pause.refresh_from_db()
    assert pause.lift_note == "retrained on the guidelines" and pause.lifted_by == admin_user
    event = AuditEvent.objects.get(action="rater.pause_lift")
    assert event.actor_id == admin_user.pk and event.changes["note"] == "retrained on the guidelines"
    again = _api(admin_user).post(f"/api/v1/queues/{queue.pk}/pauses/{pause.pk}/lift/")
    assert again.status_code == 409 and "already lifted" in again.json()["detail"]

    # The old wrong answers are spent: two new wrong ones are under the minimum again.
    _work(client, queue, right=False, times=2)
    assert RaterQueuePause.objects.filter(lifted_at__isnull=True).count() == 0
    _work(client, queue, right=False, times=1)
    second = RaterQueuePause.objects.get(lifted_at__isnull=True)
    assert second.gold_answered == 3 and "since the last lift" in second.reason
    assert _next(client, queue)[0] == 403

    # The page door lifts too.
    response = page.post(f"/manage/queues/{queue.pk}/pauses/{second.pk}/lift/", {"note": "ok"})
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.lifted_at is not None and second.lift_note == "ok"
    assert _next(client, queue)[0] == 201
    assert_no_drift()


def test_rater_cannot_lift_on_the_page():
    rater = RaterFactory()
    queue = _queue(rater)
    _work(_api(rater), queue, right=False, times=3)
    page = Client()
    page.force_login(rater)
    pause = RaterQueuePause.objects.get()
    assert page.post(f"/manage/queues/{queue.pk}/pauses/{pause.pk}/lift/").status_code == 403
    pause.refresh_from_db()
    assert pause.lifted_at is None


def test_thresholds_are_queue_settings_checked_by_field(admin_user):
    queue = QueueFactory()
    url = f"/api/v1/queues/{queue.pk}/"
    bad = _api(admin_user).patch(url, {"gold_min_accuracy": 1.5}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "gold_min_accuracy"
    assert (
        _api(admin_user).patch(url, {"gold_min_items": 0}, format="json").json()["field"] == "gold_min_items"
    )
    ok = _api(admin_user).patch(
        url, {"gold_min_accuracy": 0.8, "gold_min_items": 5, "review_disagreement": 0.25}, format="json"
    )
    assert ok.status_code == 200, ok.content
    assert (
        ok.json()["gold_min_accuracy"],
        ok.json()["gold_min_items"],
        ok.json()["review_disagreement"],
    ) == (
        0.8,
        5,
        0.25,
    )
    off = _api(admin_user).patch(url, {"gold_min_accuracy": None}, format="json")
    assert off.status_code == 200 and off.json()["gold_min_accuracy"] is None


def test_paused_rater_exists_leaves_out_the_judgments_of_raters_paused_from_their_queue(admin_user):
    from labeling.models import Judgment
    from labeling.selectors.pauses import paused_rater_exists

    bad, good = RaterFactory(), RaterFactory()
    queue = _queue(bad)
    queue.members.add(good)
    other = QueueFactory(members=[bad])
    QueueItemFactory(queue=other)
    _work(_api(bad), queue, right=False, times=3)
    _work(_api(good), queue, right=True, times=1)
    code, body = _next(_api(bad), other)
    _api(bad).post(f"/api/v1/assignments/{body['id']}/judgment/", {"preference": 1}, format="json")
    kept = Judgment.objects.exclude(paused_rater_exists())
    assert {(j.assignment.rater_id, j.assignment.item.queue_id) for j in kept} == {
        (good.pk, queue.pk),
        (bad.pk, other.pk),
    }
    pause = RaterQueuePause.objects.get()
    _api(admin_user).post(f"/api/v1/queues/{queue.pk}/pauses/{pause.pk}/lift/")
    assert Judgment.objects.exclude(paused_rater_exists()).count() == 5


def test_thresholds_are_set_on_the_dashboard_too(admin_user):
    queue = QueueFactory()
    page = Client()
    page.force_login(admin_user)
    form = {
        "overlap": queue.overlap,
        "lease_seconds": queue.lease_seconds,
        "max_open_leases": queue.max_open_leases,
        "priority": queue.priority,
        "guidelines": "",
        "content_warning": "",
        "content_warning_category": "",
        "gold_min_accuracy": "0.9",
        "gold_min_items": "4",
        "review_disagreement": "",
    }
    post = {f"settings-{k}": v for k, v in form.items()}
    response = page.post(f"/manage/queues/{queue.pk}/settings/", post)
    assert response.status_code == 302
    queue.refresh_from_db()
    assert (queue.gold_min_accuracy, queue.gold_min_items, queue.review_disagreement) == (0.9, 4, None)
    bad = page.post(f"/manage/queues/{queue.pk}/settings/", {**post, "settings-review_disagreement": "2"})
    assert bad.status_code == 400 and 'id="id_settings-review_disagreement_error"' in bad.content.decode()
    assert AuditEvent.objects.filter(action="queue.update", object_id=str(queue.pk)).exists()
