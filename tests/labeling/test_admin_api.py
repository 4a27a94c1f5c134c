"""Admin routes of the API core: users, rubrics, queue creation."""

from __future__ import annotations

import pytest

from labeling.models import Queue, QueueItem, User
from tests.factories import CandidateFactory, GeneratorFactory, PromptFactory, RubricFactory

pytestmark = pytest.mark.django_db


def test_admin_creates_users_with_roles(admin_api, api):
    response = admin_api.post(
        "/api/v1/users/",
        {"username": "newrater", "password": "long-enough-pass", "role": "rater"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "rater"
    user = User.objects.get(username="newrater")
    assert not user.is_staff
    token = api.post(
        "/api/v1/auth/token/", {"username": "newrater", "password": "long-enough-pass"}, format="json"
    )
    assert token.status_code == 200 and token.json()["token"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "x", "password": "long-enough-pass", "role": "boss"}, "role"),
        ({"username": "x", "password": "short", "role": "rater"}, "password"),
        ({"password": "long-enough-pass", "role": "rater"}, "username"),
    ],
)
def test_user_create_errors_name_the_field(admin_api, payload, field):
    response = admin_api.post("/api/v1/users/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not User.objects.filter(username="x").exists()


def test_only_admins_create_users(rater_api, researcher_api):
    payload = {"username": "x", "password": "long-enough-pass", "role": "admin"}
    assert rater_api.post("/api/v1/users/", payload, format="json").status_code == 403
    assert researcher_api.post("/api/v1/users/", payload, format="json").status_code == 403


def test_bad_token_login(api, rater):
    response = api.post(
        "/api/v1/auth/token/", {"username": rater.username, "password": "wrong"}, format="json"
    )
    assert response.status_code == 400


def test_create_rubric_and_queue_from_tags(admin_api, rater, rater2):
    rubric = admin_api.post(
        "/api/v1/rubrics/",
        {
            "name": "hhh",
            "criteria": [
                {"key": "helpful", "question": "More helpful?", "kind": "preference", "required": True}
            ],
        },
        format="json",
    )
    assert rubric.status_code == 201, rubric.content
    generator = GeneratorFactory()
    for tag in ("chat", "chat", "other"):
        prompt = PromptFactory(tags=[tag])
        for i in range(3):
            CandidateFactory(prompt=prompt, generator=generator, sample_index=i)
    response = admin_api.post(
        "/api/v1/queues/",
        {
            "name": "chat pairs",
            "kind": "pairwise",
            "overlap": 2,
            "rubric": "hhh",
            "tags": ["chat"],
            "pairing": "all_pairs",
            "members": [rater.username, str(rater2.pk)],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    queue = Queue.objects.get(name="chat pairs")
    assert response.json()["items"] == 6  # 2 prompts x C(3,2) pairs
    assert QueueItem.objects.filter(queue=queue).count() == 6
    assert set(queue.members.values_list("username", flat=True)) == {rater.username, rater2.username}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rubric": "nope"}, "rubric"),
        ({"members": ["ghost"]}, "members"),
        ({"prompts": ["999999"]}, "prompts"),
        ({"overlap": 0}, "overlap"),
        ({"pairing": "sideways"}, "pairing"),
    ],
)
def test_queue_create_errors_name_the_field(admin_api, change, field):
    rubric = RubricFactory(name="r")
    prompt = PromptFactory()
    generator = GeneratorFactory()
    for i in range(2):
        CandidateFactory(prompt=prompt, generator=generator, sample_index=i)
    payload = {"name": "q", "rubric": str(rubric.pk), "prompts": [str(prompt.pk)], **change}
    response = admin_api.post("/api/v1/queues/", payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert not Queue.objects.filter(name="q").exists()


def test_raters_cannot_create_queues(rater_api):
    assert rater_api.post("/api/v1/queues/", {"name": "q", "rubric": "1"}, format="json").status_code == 403
