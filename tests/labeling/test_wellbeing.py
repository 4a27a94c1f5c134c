"""Rater wellbeing through both claims and both doors: the disturbing opt-in, the daily cap (and
its reset at midnight UTC), the "take a break" interstitial, the opt-in toggle, queue settings,
and the admin's exposure view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Assignment, AttackExposure, AuditEvent, Queue, User
from labeling.selectors.wellbeing import rater_break_due, rater_run_length, utc_day_start, wellbeing_exposure
from labeling.services import assignment_claim_next, judgment_submit
from labeling.services.redteam_reviews import attack_claim_next, attack_review_submit
from labeling.services.wellbeing import DailyCapReached
from tests.conftest import _client_for
from tests.factories import (
    AdminFactory,
    AttackFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    ReviewerFactory,
    ReviewQueueFactory,
)

pytestmark = pytest.mark.django_db


def _queue_with_items(rater, n=3, **settings):
    queue = QueueFactory(members=[rater], **settings)
    for _ in range(n):
        QueueItemFactory(queue=queue)
    return queue


def _judge(rater, queue):
    assignment = assignment_claim_next(rater=rater, queue=queue)
    judgment_submit(assignment=assignment, preference=1)
    return assignment


# ------------------------------------------------------------------ opt-in


def test_disturbing_queue_refuses_raters_who_did_not_opt_in_through_both_doors(client):
    rater = RaterFactory()
    queue = _queue_with_items(rater, disturbing=True)
    with pytest.raises(ApplicationError) as exc:
        assignment_claim_next(rater=rater, queue=queue)
    assert exc.value.status_code == 403 and "/rate/profile/" in exc.value.message
    response = _client_for(rater).post(f"/api/v1/queues/{queue.pk}/next/")
    assert response.status_code == 403 and "opted in" in response.json()["detail"]
    assert not Assignment.objects.exists()
    client.force_login(rater)
    assert client.get(f"/rate/{queue.pk}/").status_code == 302  # back to the list, with the message
    rater.disturbing_opt_in = True
    rater.save()
    assert assignment_claim_next(rater=rater, queue=queue) is not None


def test_redteam_review_refuses_raters_who_did_not_opt_in():
    rater = RaterFactory()
    queue = ReviewQueueFactory(members=[rater])
    AttackFactory(queue=queue)
    with pytest.raises(ApplicationError) as exc:
        attack_claim_next(rater=rater, queue=queue)
    assert exc.value.status_code == 403 and "/rate/profile/" in exc.value.message
    response = _client_for(rater).post(f"/api/v1/redteam/queues/{queue.pk}/next/")
    assert response.status_code == 403
    assert not AttackExposure.objects.exists()


def test_queue_lists_leave_out_disturbing_queues_for_raters_who_did_not_opt_in(client):
    rater = RaterFactory()
    calm = _queue_with_items(rater, n=1, name="calm-queue")
    dark = _queue_with_items(rater, n=1, name="dark-queue", disturbing=True)
    listed = [q["id"] for q in _client_for(rater).get("/api/v1/queues/").json()]
    assert listed == [calm.pk]
    client.force_login(rater)
    html = client.get("/rate/").content.decode()
    assert "calm-queue" in html and "dark-queue" not in html
    rater.disturbing_opt_in = True
    rater.save()
    listed = {q["id"] for q in _client_for(rater).get("/api/v1/queues/").json()}
    assert listed == {calm.pk, dark.pk}
    assert "dark-queue" in client.get("/rate/").content.decode()


def test_profile_toggles_the_opt_in_and_audits_it(client):
    rater = RaterFactory()
    client.force_login(rater)
    page = client.get("/rate/profile/").content.decode()
    assert 'name="disturbing_opt_in"' in page and 'id="disturbing-opt-in">' in page  # unchecked
    assert client.post("/rate/profile/", {"disturbing_opt_in": "on"}).status_code == 302
    rater.refresh_from_db()
    assert rater.disturbing_opt_in
    assert 'id="disturbing-opt-in" checked' in client.get("/rate/profile/").content.decode()
    client.post("/rate/profile/", {})
    rater.refresh_from_db()
    assert not rater.disturbing_opt_in
    events = AuditEvent.objects.filter(action="user.disturbing_opt_in").order_by("id")
    assert [e.changes["disturbing_opt_in"] for e in events] == [[False, True], [True, False]]


# ------------------------------------------------------------------ daily cap


def test_daily_cap_in_the_ordinary_claim_and_its_reset_at_midnight_utc():
    rater = RaterFactory()
    queue = _queue_with_items(rater, n=4, daily_cap=2)
    _judge(rater, queue)
    held = assignment_claim_next(rater=rater, queue=queue)
    assert assignment_claim_next(rater=rater, queue=queue).pk == held.pk  # a held item is not refused
    judgment_submit(assignment=held, preference=0)
    with pytest.raises(DailyCapReached) as exc:
        assignment_claim_next(rater=rater, queue=queue)
    assert exc.value.status_code == 429
    assert "limit of 2" in exc.value.message and "resets at midnight UTC" in exc.value.message
    response = _client_for(rater).post(f"/api/v1/queues/{queue.pk}/next/")
    assert response.status_code == 429 and "resets at midnight UTC" in response.json()["detail"]
    assert Assignment.objects.filter(rater=rater).count() == 2
    tomorrow = utc_day_start() + timedelta(days=1, minutes=1)
    assert assignment_claim_next(rater=rater, queue=queue, now=tomorrow) is not None


def test_daily_cap_counts_only_this_queue_and_this_rater():
    rater, other = RaterFactory(), RaterFactory()
    queue = _queue_with_items(rater, n=3, daily_cap=1)
    queue.members.add(other)
    free = _queue_with_items(rater, n=2)
    _judge(rater, queue)
    _judge(rater, free)
    _judge(rater, free)
    _judge(other, queue)  # another rater has a cap of their own
    with pytest.raises(DailyCapReached):
        assignment_claim_next(rater=rater, queue=queue)


def test_daily_cap_in_the_review_claim():
    reviewer = ReviewerFactory()
    queue = ReviewQueueFactory(members=[reviewer], daily_cap=2)
    for _ in range(4):
        AttackFactory(queue=queue)
    first = attack_claim_next(rater=reviewer, queue=queue)
    attack_review_submit(attack=first, reviewer=reviewer, verdict="reject")
    second = attack_claim_next(rater=reviewer, queue=queue)
    assert attack_claim_next(rater=reviewer, queue=queue).pk == second.pk  # held: shown at the cap
    attack_review_submit(attack=second, reviewer=reviewer, verdict="reject")
    response = _client_for(reviewer).post(f"/api/v1/redteam/queues/{queue.pk}/next/")
    assert response.status_code == 429
    assert "resets at midnight UTC" in response.json()["detail"]
    assert 0 < int(response["Retry-After"]) <= 86400
    assert AttackExposure.objects.filter(rater=reviewer).count() == 2
    tomorrow = utc_day_start() + timedelta(days=1, minutes=1)
    assert attack_claim_next(rater=reviewer, queue=queue, now=tomorrow) is not None


def test_the_review_page_says_the_cap_is_reached(client):
    reviewer = ReviewerFactory()
    queue = ReviewQueueFactory(members=[reviewer], daily_cap=1)
    AttackFactory(queue=queue)
    AttackFactory(queue=queue)
    attack_review_submit(
        attack=attack_claim_next(rater=reviewer, queue=queue), reviewer=reviewer, verdict="reject"
    )
    client.force_login(reviewer)
    page = client.get(f"/redteam/review/{queue.pk}/")
    assert page.status_code == 429 and "resets at midnight UTC" in page.content.decode()


# ------------------------------------------------------------------ breaks


def test_run_length_counts_items_with_short_gaps_only(settings):
    settings.PREFLAB_BREAK_GAP_MINUTES = 10
    rater = RaterFactory()
    queue = _queue_with_items(rater, n=4, break_after=2)
    done = [_judge(rater, queue) for _ in range(3)]
    assert rater_run_length(rater=rater, queue=queue) == 3
    assert not rater_break_due(rater=rater, queue=queue)
    # The first item was 30 minutes before the others: a break, so the run is the last two.
    Assignment.objects.filter(pk=done[0].pk).update(created_at=timezone.now() - timedelta(minutes=30))
    assert rater_run_length(rater=rater, queue=queue) == 2
    assert rater_break_due(rater=rater, queue=queue)
    # Twelve minutes later, the pause itself was the break.
    later = timezone.now() + timedelta(minutes=12)
    assert rater_run_length(rater=rater, queue=queue, now=later) == 0
    assert not rater_break_due(rater=rater, queue=queue, now=later)


def test_rate_page_shows_the_break_interstitial_and_continue_goes_on(client):
    rater = RaterFactory()
    queue = _queue_with_items(rater, n=4, break_after=2)
    _judge(rater, queue)
    _judge(rater, queue)
    client.force_login(rater)
    page = client.get(f"/rate/{queue.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="take-break"' in html and "2 items" in html and 'value="continue"' in html
    assert Assignment.objects.filter(rater=rater).count() == 2  # nothing claimed behind the break
    response = client.post(f"/rate/{queue.pk}/", {"action": "continue"})
    assert response.status_code == 302 and "/rate/assignment/" in response["Location"]
    assert Assignment.objects.filter(rater=rater).count() == 3
    # The item now held is shown again, never the interstitial.
    assert client.get(f"/rate/{queue.pk}/").status_code == 302


def test_the_htmx_workbench_swaps_in_the_break_after_a_skip(client):
    rater = RaterFactory()
    queue = _queue_with_items(rater, n=4, break_after=3)
    _judge(rater, queue)
    _judge(rater, queue)
    held = assignment_claim_next(rater=rater, queue=queue)
    client.force_login(rater)
    response = client.post(
        f"/rate/assignment/{held.pk}/", {"action": "skip", "skip_reason": "tired"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="workbench"' in html and 'id="take-break"' in html and "3 items" in html
    assert response["HX-Push-Url"] == f"/rate/{queue.pk}/"
    assert Assignment.objects.filter(rater=rater).count() == 3


def test_api_next_says_take_break():
    rater = RaterFactory()
    queue = _queue_with_items(rater, n=4, break_after=2)
    client = _client_for(rater)
    first = client.post(f"/api/v1/queues/{queue.pk}/next/").json()
    assert first["take_break"] is False
    judgment_submit(assignment=Assignment.objects.get(pk=first["id"]), preference=1)
    second = client.post(f"/api/v1/queues/{queue.pk}/next/").json()
    judgment_submit(assignment=Assignment.objects.get(pk=second["id"]), preference=1)
    assert second["take_break"] is False
    third = client.post(f"/api/v1/queues/{queue.pk}/next/").json()
    assert third["take_break"] is True
    assert client.post(f"/api/v1/queues/{queue.pk}/next/").json()["take_break"] is False  # held


def test_review_page_shows_the_break_before_the_next_attack(client):
    reviewer = ReviewerFactory()
    queue = ReviewQueueFactory(members=[reviewer], break_after=1)
    AttackFactory(queue=queue)
    AttackFactory(queue=queue)
    attack_review_submit(
        attack=attack_claim_next(rater=reviewer, queue=queue), reviewer=reviewer, verdict="reject"
    )
    client.force_login(reviewer)
    html = client.get(f"/redteam/review/{queue.pk}/").content.decode()
    assert 'id="take-break"' in html and 'id="item-content"' not in html
    assert AttackExposure.objects.filter(rater=reviewer).count() == 1
    assert client.post(f"/redteam/review/{queue.pk}/", {"action": "continue"}).status_code == 302
    assert AttackExposure.objects.filter(rater=reviewer).count() == 2
    assert 'id="item-content"' in client.get(f"/redteam/review/{queue.pk}/").content.decode()
    body = _client_for(reviewer).post(f"/api/v1/redteam/queues/{queue.pk}/next/").json()
    assert body["take_break"] is False  # the held attack, not a new one


# ------------------------------------------------------------------ queue settings


def test_admins_set_wellbeing_settings_through_the_api():
    admin = AdminFactory()
    queue = QueueFactory()
    client = _client_for(admin)
    response = client.patch(
        f"/api/v1/queues/{queue.pk}/", {"disturbing": True, "daily_cap": 30, "break_after": 10}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["disturbing"], body["daily_cap"], body["break_after"]) == (True, 30, 10)
    queue.refresh_from_db()
    assert (queue.disturbing, queue.daily_cap, queue.break_after) == (True, 30, 10)
    cleared = client.patch(f"/api/v1/queues/{queue.pk}/", {"daily_cap": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["daily_cap"] is None
    bad = client.patch(f"/api/v1/queues/{queue.pk}/", {"daily_cap": 0}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "daily_cap"
    assert (
        _client_for(RaterFactory()).patch(f"/api/v1/queues/{queue.pk}/", {"daily_cap": 3}).status_code == 403
    )


def test_admins_set_wellbeing_settings_on_the_dashboard(client):
    admin = AdminFactory()
    queue = QueueFactory()
    client.force_login(admin)
    page = client.get(f"/manage/queues/{queue.pk}/").content.decode()
    assert 'name="settings-daily_cap"' in page and 'name="settings-disturbing"' in page
    form = {
        f"settings-{key}": value
        for key, value in {
            "overlap": queue.overlap,
            "lease_seconds": queue.lease_seconds,
            "max_open_leases": queue.max_open_leases,
            "priority": queue.priority,
            "gold_min_items": queue.gold_min_items,
            "disturbing": "on",
            "daily_cap": "5",
            "break_after": "3",
        }.items()
    }
    response = client.post(f"/manage/queues/{queue.pk}/settings/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    queue.refresh_from_db()
    assert (queue.disturbing, queue.daily_cap, queue.break_after) == (True, 5, 3)


# ------------------------------------------------------------------ exposure view


def test_exposure_counts_disturbing_work_per_rater_and_day(client):
    rater = RaterFactory(username="exposed", disturbing_opt_in=True)
    reviewer = ReviewerFactory(username="reviewer-x")
    dark = _queue_with_items(rater, n=2, disturbing=True)
    calm = _queue_with_items(rater, n=2)
    _judge(rater, dark)
    _judge(rater, dark)
    _judge(rater, calm)  # not disturbing: not counted
    review = ReviewQueueFactory(members=[reviewer])
    AttackFactory(queue=review)
    attack_claim_next(rater=reviewer, queue=review)
    data = wellbeing_exposure()
    assert len(data["days"]) == 14 and data["days"][-1] == timezone.now().date().isoformat()
    rows = {r["rater"]: r for r in data["raters"]}
    assert set(rows) == {"exposed", "reviewer-x"}
    today = rows["exposed"]["days"][-1]
    assert (today["assignments"], today["attack_exposures"], today["total"]) == (2, 0, 2)
    assert rows["reviewer-x"]["days"][-1]["attack_exposures"] == 1
    assert rows["exposed"]["opted_in"] is True and rows["exposed"]["total"] == 2

    admin = AdminFactory()
    assert _client_for(admin).get("/api/v1/wellbeing/exposure/").json()["raters"][0]["rater"] == "exposed"
    assert _client_for(rater).get("/api/v1/wellbeing/exposure/").status_code == 403
    client.force_login(admin)
    html = client.get("/manage/wellbeing/").content.decode()
    assert 'id="exposure-chart"' in html and "exposed" in html and "reviewer-x" in html
    assert "How do I pick lock" not in html  # counts, never content
    client.force_login(rater)
    assert client.get("/manage/wellbeing/").status_code == 403


def test_queue_output_shows_the_wellbeing_fields():
    admin = AdminFactory()
    queue = QueueFactory(disturbing=True, daily_cap=7)
    row = next(q for q in _client_for(admin).get("/api/v1/queues/").json() if q["id"] == queue.pk)
    assert (row["disturbing"], row["daily_cap"], row["break_after"]) == (True, 7, None)
    assert Queue.objects.get(pk=queue.pk).daily_cap == 7
    assert User.objects.filter(disturbing_opt_in=True).count() == 0
