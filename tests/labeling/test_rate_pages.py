"""The rater's browser flow over real HTTP with Django's test client: log in, judge, next."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling.models import Assignment, Criterion, Judgment
from tests.factories import PASSWORD, CriterionFactory, QueueFactory, QueueItemFactory, make_pair

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(rater):
    queue = QueueFactory(members=[rater], guidelines="Be fair.")
    CriterionFactory(
        rubric=queue.rubric,
        key="helpful",
        kind=Criterion.Kind.PREFERENCE,
        required=True,
        question="More helpful?",
    )
    CriterionFactory(rubric=queue.rubric, key="quality", kind=Criterion.Kind.LIKERT, question="Quality")
    CriterionFactory(rubric=queue.rubric, key="unsafe", kind=Criterion.Kind.FLAG, question="Unsafe?")
    QueueItemFactory(queue=queue, comparison=make_pair(texts=("<script>alert(1)</script>", "Plain answer.")))
    QueueItemFactory(queue=queue, comparison=make_pair(texts=("Second A.", "Second B.")))
    return queue


def test_login_judge_next(rater, setup):
    client = Client()
    page = client.post("/accounts/login/", {"username": rater.username, "password": PASSWORD}, follow=True)
    assert page.status_code == 200
    assert b"My queues" in page.content
    page = client.get(f"/rate/{setup.pk}/", follow=True)
    assert page.status_code == 200
    body = page.content.decode()
    assert "Response A" in body and "Response B" in body and "More helpful?" in body
    # model output is escaped, never executed
    if "alert(1)" in body:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
        assert "<script>alert(1)" not in body
    assignment = Assignment.objects.get(rater=rater)
    labels = ["A", "B"]
    response = client.post(
        f"/rate/assignment/{assignment.pk}/",
        {
            "action": "submit",
            "preference": "-3",
            "criterion-helpful": "-2",
            "criterion-quality-A": "6",
            "criterion-quality-B": "2",
            "criterion-unsafe": "on",
            "rationale": "A answers.",
            "active_seconds": "12.5",
        },
    )
    assert response.status_code == 302
    judgment = Judgment.objects.get()
    assert judgment.preference == -3
    assert judgment.criteria == {
        "helpful": -2,
        "quality": dict(zip(labels, [6, 2], strict=True)),
        "unsafe": True,
    }
    assert judgment.active_seconds == 12.5
    nxt = client.get(response["Location"], follow=True)
    assert nxt.status_code == 200
    assert Assignment.objects.filter(rater=rater, status="leased").count() == 1


def test_missing_required_criterion_shows_error_and_writes_nothing(rater, setup):
    client = Client()
    client.force_login(rater)
    client.get(f"/rate/{setup.pk}/")
    assignment = Assignment.objects.get(rater=rater)
    response = client.post(f"/rate/assignment/{assignment.pk}/", {"action": "submit", "preference": "1"})
    assert response.status_code == 400
    assert b"criteria.helpful" in response.content
    assert Judgment.objects.count() == 0


def test_skip_from_page(rater, setup):
    client = Client()
    client.force_login(rater)
    client.get(f"/rate/{setup.pk}/")
    first = Assignment.objects.get(rater=rater)
    client.post(f"/rate/assignment/{first.pk}/", {"action": "skip", "skip_reason": "offensive"})
    first.refresh_from_db()
    assert (first.status, first.skip_reason) == ("skipped", "offensive")


def test_other_raters_assignment_page_is_404(rater, rater2, setup):
    client = Client()
    client.force_login(rater)
    client.get(f"/rate/{setup.pk}/")
    assignment = Assignment.objects.get(rater=rater)
    other = Client()
    other.force_login(rater2)
    assert other.get(f"/rate/assignment/{assignment.pk}/").status_code == 404


def test_anonymous_is_sent_to_login():
    response = Client().get("/rate/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
