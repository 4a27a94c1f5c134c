"""The rater loop through the HTTP API: token, next, judgment, next; errors and replays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Assignment, Criterion, Judgment, QueueItem
from tests.factories import (
    PASSWORD,
    CriterionFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    make_pair,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(rater, rater2):
    queue = QueueFactory(members=[rater, rater2], overlap=1)
    CriterionFactory(rubric=queue.rubric, key="helpful", kind=Criterion.Kind.PREFERENCE, required=True)
    CriterionFactory(rubric=queue.rubric, key="harmful", kind=Criterion.Kind.FLAG)
    for texts in [("One A.", "One B."), ("Two A.", "Two B."), ("Three A.", "Three B.")]:
        QueueItemFactory(queue=queue, comparison=make_pair(texts=texts))
    return queue


def _token_client(api, username):
    response = api.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    api.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return api


def test_next_judge_next_until_empty(api, rater, queue):
    client = _token_client(api, rater.username)
    assert [q["id"] for q in client.get("/api/v1/queues/").json()] == [queue.pk]
    seen_texts = set()
    for _ in range(3):
        response = client.post(f"/api/v1/queues/{queue.pk}/next/")
        assert response.status_code == 201, response.content
        body = response.json()
        assert [r["label"] for r in body["responses"]] == ["A", "B"]
        assert body["prompt"][0]["role"] == "user"
        assert "generator" not in str(body["responses"])
        assert [c["key"] for c in body["rubric"]["criteria"]] == ["helpful", "harmful"]
        seen_texts.add(frozenset(r["text"] for r in body["responses"]))
        judged = client.post(
            f"/api/v1/assignments/{body['id']}/judgment/",
            {"preference": -2, "criteria": {"helpful": -1, "harmful": False}, "rationale": "A is clearer."},
            format="json",
        )
        assert judged.status_code == 201, judged.content
        assert judged.json()["preference"] == -2
    assert len(seen_texts) == 3
    assert client.post(f"/api/v1/queues/{queue.pk}/next/").status_code == 204
    assert Judgment.objects.count() == 3
    assert set(QueueItem.objects.values_list("claimed", "judged")) == {(1, 1)}


def test_refresh_returns_the_same_lease(rater_api, queue):
    first = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    again = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    assert first["id"] == again["id"]
    assert Assignment.objects.count() == 1


def test_replay_returns_stored_judgment(rater_api, queue):
    assignment = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    url = f"/api/v1/assignments/{assignment['id']}/judgment/"
    payload = {"preference": 1, "criteria": {"helpful": 1}}
    first = rater_api.post(url, payload, format="json")
    replay = rater_api.post(url, {"preference": -3, "criteria": {"helpful": -3}}, format="json")
    assert first.status_code == 201
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["preference"] == 1
    assert replay.json()["replayed"] is True
    assert Judgment.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"criteria": {"helpful": 1}}, "preference"),
        ({"preference": 4, "criteria": {"helpful": 1}}, "preference"),
        ({"preference": "A", "criteria": {"helpful": 1}}, "preference"),
        ({"preference": 1}, "criteria.helpful"),
        ({"preference": 1, "criteria": {"helpful": 9}}, "criteria.helpful"),
        ({"preference": 1, "criteria": {"helpful": 1, "nonsense": 1}}, "criteria.nonsense"),
        ({"preference": 1, "criteria": {"helpful": 1, "harmful": "yes"}}, "criteria.harmful"),
    ],
)
def test_bad_judgment_is_400_naming_the_field_and_writes_nothing(rater_api, queue, payload, field):
    assignment = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    response = rater_api.post(f"/api/v1/assignments/{assignment['id']}/judgment/", payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get(pk=assignment["id"]).status == Assignment.Status.LEASED


def test_rater_cannot_fetch_or_judge_another_raters_assignment(api, rater_api, rater2, queue):
    assignment = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    api.force_authenticate(rater2)
    assert api.get(f"/api/v1/assignments/{assignment['id']}/").status_code == 404
    response = api.post(
        f"/api/v1/assignments/{assignment['id']}/judgment/",
        {"preference": 0, "criteria": {"helpful": 0}},
        format="json",
    )
    assert response.status_code == 404
    assert api.post(f"/api/v1/assignments/{assignment['id']}/skip/").status_code == 404
    assert Judgment.objects.count() == 0


def test_skip_releases_item_for_others_not_for_me(api, rater_api, rater2, queue):
    queue.items.exclude(pk=queue.items.order_by("id").first().pk).delete()
    assignment = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    response = rater_api.post(
        f"/api/v1/assignments/{assignment['id']}/skip/", {"reason": "unclear"}, format="json"
    )
    assert response.status_code == 200
    assert Assignment.objects.get(pk=assignment["id"]).skip_reason == "unclear"
    assert rater_api.post(f"/api/v1/queues/{queue.pk}/next/").status_code == 204
    api.force_authenticate(rater2)
    assert api.post(f"/api/v1/queues/{queue.pk}/next/").status_code == 201


def test_overlap_two_distinct_raters_then_full(api, rater, rater2, queue):
    queue.overlap = 2
    queue.save()
    queue.items.exclude(pk=queue.items.order_by("id").first().pk).delete()
    third = RaterFactory()
    queue.members.add(third)
    for user in (rater, rater2):
        api.force_authenticate(user)
        a = api.post(f"/api/v1/queues/{queue.pk}/next/").json()
        assert (
            api.post(
                f"/api/v1/assignments/{a['id']}/judgment/",
                {"preference": 0, "criteria": {"helpful": 0}},
                format="json",
            ).status_code
            == 201
        )
    api.force_authenticate(third)
    assert api.post(f"/api/v1/queues/{queue.pk}/next/").status_code == 204


def test_non_member_and_paused_queue(api, queue, rater_api):
    outsider = RaterFactory()
    api.force_authenticate(outsider)
    # Not a member: as absent as a queue that does not exist (the judging page answers the same).
    response = api.post(f"/api/v1/queues/{queue.pk}/next/")
    assert response.status_code == 404 and response.json() == {"detail": "No such queue."}
    queue.status = "paused"
    queue.save()
    assert rater_api.post(f"/api/v1/queues/{queue.pk}/next/").status_code == 204


def test_expired_lease_is_reclaimed_and_late_judgment_refused_when_full(api, rater, rater2, queue):
    queue.items.exclude(pk=queue.items.order_by("id").first().pk).delete()
    api.force_authenticate(rater)
    late = api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    Assignment.objects.filter(pk=late["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    api.force_authenticate(rater2)
    taken = api.post(f"/api/v1/queues/{queue.pk}/next/")
    assert taken.status_code == 201
    assert Assignment.objects.get(pk=late["id"]).status == Assignment.Status.EXPIRED
    api.force_authenticate(rater)
    response = api.post(
        f"/api/v1/assignments/{late['id']}/judgment/",
        {"preference": 1, "criteria": {"helpful": 1}},
        format="json",
    )
    assert response.status_code == 409
    assert "expired" in response.json()["detail"]
    assert Judgment.objects.count() == 0


def test_expired_lease_still_accepted_while_item_has_room(rater_api, queue):
    a = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    from labeling.services import assignments_expire

    Assignment.objects.filter(pk=a["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert assignments_expire() == 1
    response = rater_api.post(
        f"/api/v1/assignments/{a['id']}/judgment/",
        {"preference": 3, "criteria": {"helpful": 3}},
        format="json",
    )
    assert response.status_code == 201
    item = Assignment.objects.get(pk=a["id"]).item
    assert (item.claimed, item.judged) == (1, 1)


def test_rewrite_through_the_api_becomes_a_human_candidate_outside_blind_views(rater_api, rater, queue):
    from comparisons.models import Candidate

    body = rater_api.post(f"/api/v1/queues/{queue.pk}/next/").json()
    response = rater_api.post(
        f"/api/v1/assignments/{body['id']}/judgment/",
        {"preference": -1, "criteria": {"helpful": -1}, "rewrite": "A better answer, written by a person."},
        format="json",
    )
    assert response.status_code == 201, response.content
    human = Candidate.objects.get(text="A better answer, written by a person.")
    assert human.author == rater and human.generator.backend == "human"
    assert not human.comparisons.exists()
