"""Running a queue from its dashboard (``/manage/queues/{id}/``) and from the API
(``PATCH /api/v1/queues/{id}/``): pause, resume, close and reopen; safe settings; members by
username or Django group. Admins only; researchers see the dashboard read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from labeling.models import Assignment, Queue
from labeling.services import assignment_claim_next, judgment_submit
from tests.factories import QueueFactory, QueueItemFactory, RaterFactory

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _settings(queue: Queue, **changes) -> dict[str, object]:
    fields = {
        "overlap": queue.overlap,
        "lease_seconds": queue.lease_seconds,
        "max_open_leases": queue.max_open_leases,
        "priority": queue.priority,
        "guidelines": queue.guidelines,
        "content_warning": queue.content_warning,
        "content_warning_category": queue.content_warning_category,
        **changes,
    }
    return {f"settings-{key}": value for key, value in fields.items()}


def test_admin_pauses_resumes_closes_and_reopens_a_queue_from_the_dashboard(admin_user, rater):
    queue = QueueFactory(name="Helpfulness", members=[rater])
    QueueItemFactory.create_batch(2, queue=queue)
    held = assignment_claim_next(rater=rater, queue=queue)
    client = _client(admin_user)
    page = client.get(f"/manage/queues/{queue.pk}/").content.decode()
    assert 'name="status" value="paused"' in page and 'name="status" value="closed"' in page

    response = client.post(f"/manage/queues/{queue.pk}/status/", {"status": "paused"})
    assert response.status_code == 302 and response["Location"] == f"/manage/queues/{queue.pk}/"
    queue.refresh_from_db()
    assert queue.status == Queue.Status.PAUSED
    page = client.get(f"/manage/queues/{queue.pk}/").content.decode()
    assert "Queue &#x27;Helpfulness&#x27; is paused: it hands out nothing until resumed" in page
    assert 'value="active"' in page and ">Resume<" in page
    # Paused: nothing new is handed out, and the item already held can still be judged.
    other = RaterFactory()
    queue.members.add(other)
    assert assignment_claim_next(rater=other, queue=queue) is None
    judgment_submit(assignment=held, preference=1)
    assert Assignment.objects.get(pk=held.pk).status == Assignment.Status.SUBMITTED

    client.post(f"/manage/queues/{queue.pk}/status/", {"status": "closed"})
    queue.refresh_from_db()
    assert queue.status == Queue.Status.CLOSED
    # A closed queue can only be reopened; pausing it is refused with the reason, nothing changes.
    client.post(f"/manage/queues/{queue.pk}/status/", {"status": "paused"})
    queue.refresh_from_db()
    assert queue.status == Queue.Status.CLOSED
    page = client.get(f"/manage/queues/{queue.pk}/").content.decode()
    assert "a closed queue cannot be made paused (reopen it first: make it active)" in page
    client.post(f"/manage/queues/{queue.pk}/status/", {"status": "active"})
    queue.refresh_from_db()
    assert queue.status == Queue.Status.ACTIVE
    assert assignment_claim_next(rater=other, queue=queue) is not None


def test_the_queue_list_pauses_and_returns_to_the_list(admin_user):
    queue = QueueFactory(name="Listed")
    client = _client(admin_user)
    page = client.get("/manage/queues/").content.decode()
    assert f'action="/manage/queues/{queue.pk}/status/"' in page and 'aria-label="Pause Listed"' in page
    response = client.post(
        f"/manage/queues/{queue.pk}/status/", {"status": "paused", "next": "/manage/queues/"}
    )
    assert response["Location"] == "/manage/queues/"
    queue.refresh_from_db()
    assert queue.status == Queue.Status.PAUSED
    # Any other "next" is ignored: the dashboard, never somewhere else.
    response = client.post(
        f"/manage/queues/{queue.pk}/status/", {"status": "active", "next": "https://example.org/"}
    )
    assert response["Location"] == f"/manage/queues/{queue.pk}/"


def test_an_unknown_status_is_named_and_changes_nothing(admin_user):
    queue = QueueFactory()
    client = _client(admin_user)
    client.post(f"/manage/queues/{queue.pk}/status/", {"status": "archived"})
    queue.refresh_from_db()
    assert queue.status == Queue.Status.ACTIVE
    assert (
        "status: must be one of active, paused, closed"
        in client.get(f"/manage/queues/{queue.pk}/").content.decode()
    )


def test_researchers_see_the_dashboard_read_only_and_raters_nothing(researcher, rater):
    queue = QueueFactory(members=[rater], guidelines="Be **kind**.", content_warning="violence")
    client = _client(researcher)
    page = client.get(f"/manage/queues/{queue.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "<form" not in html.split('<main id="main">')[1]  # no controls, only the settings and members
    assert "<strong>kind</strong>" in html and "violence" in html and rater.username in html
    for route, data in (
        ("status", {"status": "paused"}),
        ("settings", _settings(queue, overlap=3)),
        ("members", {"members-usernames": ""}),
    ):
        assert client.post(f"/manage/queues/{queue.pk}/{route}/", data).status_code == 403
    queue.refresh_from_db()
    assert (queue.status, queue.overlap, queue.members.count()) == (Queue.Status.ACTIVE, 1, 1)
    rater_client = _client(rater)
    assert rater_client.get(f"/manage/queues/{queue.pk}/").status_code == 403
    assert rater_client.post(f"/manage/queues/{queue.pk}/status/", {"status": "paused"}).status_code == 403


def test_admin_changes_the_safe_settings(admin_user):
    queue = QueueFactory(overlap=2, lease_seconds=900)
    client = _client(admin_user)
    response = client.post(
        f"/manage/queues/{queue.pk}/settings/",
        _settings(
            queue,
            overlap=4,
            lease_seconds=120,
            max_open_leases=2,
            priority=5,
            guidelines="Prefer **short** answers.",
            content_warning="  graphic violence ",
            content_warning_category="violence",
        ),
    )
    assert response.status_code == 302
    queue.refresh_from_db()
    assert (queue.overlap, queue.lease_seconds, queue.max_open_leases, queue.priority) == (4, 120, 2, 5)
    assert (queue.guidelines, queue.content_warning, queue.content_warning_category) == (
        "Prefer **short** answers.",
        "graphic violence",
        "violence",
    )
    page = client.get(response["Location"]).content.decode()
    assert (
        "settings saved (overlap, lease seconds, max open leases, priority, guidelines, content warning"
        in page
    )


def test_overlap_shrinks_only_down_to_the_fullest_real_item(admin_user):
    raters = RaterFactory.create_batch(3)
    queue = QueueFactory(overlap=3, members=raters)
    QueueItemFactory(queue=queue)
    gold = QueueItemFactory(queue=queue, is_gold=True, gold_answer={"preference": -1})
    for rater in raters[:2]:
        assignment_claim_next(rater=rater, queue=queue)  # two leases on the one real item
    gold.claimed = 3  # gold items have no overlap limit: they do not count
    gold.save(update_fields=["claimed"])
    client = _client(admin_user)
    assert "it may shrink down to 2" in client.get(f"/manage/queues/{queue.pk}/").content.decode()

    refused = client.post(f"/manage/queues/{queue.pk}/settings/", _settings(queue, overlap=1))
    assert refused.status_code == 400
    html = refused.content.decode()
    assert "overlap: cannot go below 2: an item already has 2 leases and judgments" in html
    assert 'aria-invalid="true"' in html and 'id="id_settings-overlap_error"' in html
    queue.refresh_from_db()
    assert queue.overlap == 3

    assert client.post(f"/manage/queues/{queue.pk}/settings/", _settings(queue, overlap=2)).status_code == 302
    queue.refresh_from_db()
    assert queue.overlap == 2


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"overlap": 51}, "overlap", "Ensure this value is less than or equal to 50."),
        ({"lease_seconds": 10}, "lease_seconds", "Ensure this value is greater than or equal to 30."),
        ({"max_open_leases": 0}, "max_open_leases", "Ensure this value is greater than or equal to 1."),
        ({"content_warning": "x" * 201}, "content_warning", "at most 200 characters"),
        ({"content_warning_category": "gore"}, "content_warning_category", "Select a valid choice."),
        ({"priority": "high"}, "priority", "Enter a whole number."),
    ],
)
def test_bad_settings_are_named_on_their_field_and_nothing_is_saved(admin_user, changes, field, message):
    queue = QueueFactory(overlap=2, priority=1)
    response = _client(admin_user).post(f"/manage/queues/{queue.pk}/settings/", _settings(queue, **changes))
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert f'href="#id_settings-{field}"' in html  # the error summary links to the field
    fresh = Queue.objects.get(pk=queue.pk)
    assert (fresh.overlap, fresh.priority, fresh.content_warning) == (2, 1, "")


def test_admin_sets_members_by_username_and_group(admin_user):
    ana, ben, cy = (RaterFactory(username=n) for n in ("ana", "ben", "cy"))
    night = Group.objects.create(name="night shift")
    cy.groups.add(night)
    queue = QueueFactory(members=[ana])
    client = _client(admin_user)
    page = client.get(f"/manage/queues/{queue.pk}/").content.decode()
    assert "night shift" in page and ">ana</textarea>" in page.replace("\n", "")

    response = client.post(
        f"/manage/queues/{queue.pk}/members/",
        {"members-usernames": "ben,\nana", "members-groups": [night.pk]},
    )
    assert response.status_code == 302
    assert sorted(queue.members.values_list("username", flat=True)) == ["ana", "ben", "cy"]
    assert "now has 3 members" in client.get(response["Location"]).content.decode()

    refused = client.post(f"/manage/queues/{queue.pk}/members/", {"members-usernames": "ana nobody zed"})
    assert refused.status_code == 400
    assert "usernames: no user named &#x27;nobody&#x27;, &#x27;zed&#x27;" in refused.content.decode()
    assert queue.members.count() == 3

    assert client.post(f"/manage/queues/{queue.pk}/members/", {"members-usernames": ""}).status_code == 302
    assert queue.members.count() == 0
    assert (
        "No members: nobody can work on this queue yet."
        in client.get(f"/manage/queues/{queue.pk}/").content.decode()
    )


def test_api_patch_runs_the_same_rules(admin_api, researcher_api, rater_api, rater):
    queue = QueueFactory(overlap=2, members=[rater])
    item = QueueItemFactory(queue=queue)
    assignment_claim_next(rater=rater, queue=queue)
    RaterFactory(username="dee").groups.add(Group.objects.create(name="reviewers-a"))
    url = f"/api/v1/queues/{queue.pk}/"

    shown = researcher_api.get(url)
    assert shown.status_code == 200 and shown.json()["members"] == [rater.username]
    assert researcher_api.patch(url, {"status": "paused"}, format="json").status_code == 403
    assert rater_api.get(url).status_code == 403

    changed = admin_api.patch(
        url, {"status": "paused", "overlap": 3, "priority": 7, "groups": ["reviewers-a"]}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    body = changed.json()
    assert (body["status"], body["overlap"], body["priority"]) == ("paused", 3, 7)
    assert body["members"] == sorted([rater.username, "dee"])

    # All or nothing: a refused overlap leaves the status and the members as they were.
    item.claimed = 2
    item.save(update_fields=["claimed"])
    refused = admin_api.patch(url, {"overlap": 1, "status": "active", "members": []}, format="json")
    assert refused.status_code == 409
    assert refused.json()["field"] == "overlap"
    queue.refresh_from_db()
    assert (queue.status, queue.overlap, queue.members.count()) == ("paused", 3, 2)

    unknown = admin_api.patch(url, {"members": ["nobody"]}, format="json")
    assert unknown.status_code == 400 and unknown.json()["field"] == "members"
    assert admin_api.patch(url, {"lease_seconds": 5}, format="json").json()["field"] == "lease_seconds"
    assert admin_api.patch("/api/v1/queues/999999/", {"priority": 1}, format="json").status_code == 404


def test_an_empty_queue_dashboard_says_so(admin_user):
    queue = QueueFactory(name="Empty")
    html = _client(admin_user).get(f"/manage/queues/{queue.pk}/").content.decode()
    assert "peak 1" not in html
    assert "No judgments in the last 24 hours" in html and "peak 0" in html
    assert "This queue has no items to judge yet" in html
    assert "Pairwise agreement with other raters shows once two raters have judged the same item." in html
    assert "Position bias shows once raters have judged pairs" in html
    assert html.count("no item has answers from two or more raters") >= 4  # each n/a says why


def test_gold_answers_do_not_count_as_progress(admin_user, rater):
    queue = QueueFactory(members=[rater], gold_rate=1.0)
    QueueItemFactory(queue=queue)
    gold = QueueItemFactory(queue=queue, is_gold=True, gold_answer={"preference": -1})
    assignment = assignment_claim_next(rater=rater, queue=queue)
    assert assignment is not None and assignment.item_id == gold.pk
    judgment_submit(assignment=assignment, preference=-1)
    html = _client(admin_user).get(f"/manage/queues/{queue.pk}/").content.decode()
    assert "0 of 1 judgment (0.0%)" in html
    assert "1 gold item, answered 1 time" in html
