"""No 500 on any input: JSON nested too deep and control characters in text are refused with 400
naming the field, on every route, anonymous ones included, the same on both databases."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.models import Assignment, Judgment
from labeling.services import assignment_claim_next
from tests.factories import QueueFactory, QueueItemFactory

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 3000 + "1" + "}" * 3000


def _post_raw(client: APIClient, url: str, body: str):
    return client.generic("POST", url, body, content_type="application/json")


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, '{"username": ' + DEEP + "}"])
def test_deep_json_is_a_400_even_for_anonymous_callers(api, body):
    response = _post_raw(api, "/api/v1/auth/token/", body)
    assert response.status_code == 400
    assert "nested deeper than 32 levels" in response.json()["detail"]


@pytest.fixture
def lease(rater):
    queue = QueueFactory(members=[rater])
    QueueItemFactory(queue=queue)
    return assignment_claim_next(rater=rater, queue=queue)


def test_deep_json_in_a_judgment_and_a_skip(rater_api, lease):
    for url in (f"/api/v1/assignments/{lease.pk}/judgment/", f"/api/v1/assignments/{lease.pk}/skip/"):
        response = _post_raw(rater_api, url, '{"criteria": ' + "[" * 200 + "]" * 200 + "}")
        assert response.status_code == 400, url
    assert not Judgment.objects.exists()
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.LEASED


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"preference": -1, "rationale": "fine\x00"}, "rationale"),
        ({"preference": -1, "criteria": {"note": "a\x01b"}}, "criteria.note"),
        ({"preference": -1, "flags": ["ok", "bad\x1b[31m"]}, "flags[1]"),
        # a key's control character is written out, so the field name itself can be shown and stored
        ({"preference": -1, "criteria": {"k\x00ey": 1}}, "criteria.k\\u0000ey"),
    ],
)
def test_control_characters_in_json_text_are_refused_naming_the_field(rater_api, lease, body, field):
    response = rater_api.post(f"/api/v1/assignments/{lease.pk}/judgment/", body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field and "control character U+00" in response.json()["detail"]
    assert not Judgment.objects.exists()


def test_tab_and_line_breaks_are_text(rater_api, lease):
    response = rater_api.post(
        f"/api/v1/assignments/{lease.pk}/judgment/",
        {"preference": -1, "rationale": "line one\r\nline two\ttabbed"},
        format="json",
    )
    assert response.status_code == 201
    assert Judgment.objects.get().rationale == "line one\r\nline two\ttabbed"


def test_form_encoded_and_query_parameters_too(api, admin_api):
    response = api.post("/api/v1/auth/token/", {"username": "x\x00", "password": "y"})
    assert response.status_code == 400 and response.json()["field"] == "username"
    response = admin_api.get("/api/v1/prompts/?tags=a%00b")
    assert response.status_code == 400 and response.json()["field"] == "tags"


def test_a_page_form_with_a_control_character_is_a_400_not_a_500(client, rater, lease):
    client.force_login(rater)
    response = client.post(f"/rate/assignment/{lease.pk}/", {"preference": "-1", "rationale": "x\x00y"})
    assert response.status_code == 400 and b"rationale" in response.content
    assert not Judgment.objects.exists()
