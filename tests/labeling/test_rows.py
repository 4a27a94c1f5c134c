"""The hand-written hot reads (labeling.rows) return what the ORM would, field for field."""

from __future__ import annotations

import pytest
from django.db.models import Model
from rest_framework.authtoken.models import Token

from labeling.models import Assignment, Queue
from labeling.selectors import assignment_get_for_rater, queue_get
from tests.factories import (
    AssignmentFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    make_pair,
)

pytestmark = pytest.mark.django_db


def _same(got: Model, want: Model) -> None:
    assert type(got) is type(want)
    for field in type(want)._meta.concrete_fields:
        assert getattr(got, field.attname) == getattr(want, field.attname), field.name
    assert got._state.adding is False and got._state.db == want._state.db


def test_gatekeeper_rows_match_the_orm():
    rater = RaterFactory()
    prompt = PromptFactory(messages=[{"role": "user", "content": 'ünï ✓ "quoted"'}], tags=["a"])
    queue = QueueFactory(members=[rater], guidelines="Be fair.", gold_rate=0.25)
    item = QueueItemFactory(queue=queue, comparison=make_pair(prompt=prompt), gold_answer={"preference": 2})
    assignment = AssignmentFactory(item=item, rater=rater)
    got = assignment_get_for_rater(rater=rater, assignment_id=assignment.pk)
    want = Assignment.objects.select_related("item__queue__rubric", "item__comparison__prompt").get(
        pk=assignment.pk
    )
    _same(got, want)
    _same(got.item, want.item)
    _same(got.item.queue, want.item.queue)
    _same(got.item.queue.rubric, want.item.queue.rubric)
    _same(got.item.comparison, want.item.comparison)
    _same(got.item.comparison.prompt, want.item.comparison.prompt)
    assert got.expires_at.tzinfo is not None and isinstance(got.shown_order, list)
    # saving a hydrated instance works as for any ORM instance
    got.skip_reason = "saved"
    got.save(update_fields=["skip_reason"])
    assert Assignment.objects.get(pk=assignment.pk).skip_reason == "saved"


def test_gatekeeper_refuses_other_raters_and_odd_ids():
    from django.http import Http404

    assignment = AssignmentFactory()
    for rater, pk in ((RaterFactory(), assignment.pk), (assignment.rater, 2**70), (assignment.rater, "x")):
        with pytest.raises(Http404):
            assignment_get_for_rater(rater=rater, assignment_id=pk)


def test_queue_get_matches_the_orm():
    queue = QueueFactory(guidelines="g", content_warning_category="violence")
    _same(queue_get(queue_id=queue.pk), Queue.objects.get(pk=queue.pk))
    _same(queue_get(queue_id=queue.pk).rubric, queue.rubric)
    assert queue_get(queue_id=queue.pk + 1000) is None
    assert queue_get(queue_id=2**70) is None


def test_token_authentication_rules(api):
    rater = RaterFactory()
    token = Token.objects.create(user=rater)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.get("/api/v1/queues/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    response = api.get("/api/v1/queues/")
    assert response.status_code == 401 and response.json()["detail"] == "Invalid token."
    rater.is_active = False
    rater.save()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = api.get("/api/v1/queues/")
    assert response.status_code == 401 and response.json()["detail"] == "User inactive or deleted."


def test_claim_and_submit_store_what_they_return():
    """The lease and the judgment (one statement each on PostgreSQL) are stored as returned."""
    from labeling.models import Judgment, QueueItem
    from labeling.services import assignment_claim_next, judgment_submit
    from tests.factories import CandidateFactory, make_comparison

    rater = RaterFactory()
    queue = QueueFactory(members=[rater], kind=Queue.Kind.RANKING, overlap=2)
    prompt = PromptFactory()
    item = QueueItemFactory(
        queue=queue, comparison=make_comparison(prompt, CandidateFactory.create_batch(3, prompt=prompt))
    )
    lease = assignment_claim_next(rater=rater, queue=queue)
    _same(lease, Assignment.objects.get(pk=lease.pk))
    assert sorted(lease.shown_order) == sorted(int(x) for x in item.comparison.candidate_key.split(","))
    assert QueueItem.objects.get(pk=item.pk).claimed == 1

    judgment, created = judgment_submit(
        assignment=lease,
        ranking=[["B"], ["A", "C"]],
        flags=["unsafe", "unsafe"],
        active_seconds=4.5,
        rationale="ü",
    )
    assert created
    _same(judgment, Judgment.objects.get(pk=judgment.pk))
    assert (
        judgment.ranking == [["B"], ["A", "C"]]
        and judgment.preference is None
        and judgment.flags == ["unsafe"]
    )
    assert (
        judgment.created_at.tzinfo is not None and judgment.assignment.status == Assignment.Status.SUBMITTED
    )
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.SUBMITTED
    stored = QueueItem.objects.get(pk=item.pk)
    assert (stored.claimed, stored.judged) == (1, 1)
    # a replay writes nothing and returns the stored judgment
    again, created = judgment_submit(
        assignment=Assignment.objects.get(pk=lease.pk), ranking=[["A"], ["B", "C"]]
    )
    assert not created and again.pk == judgment.pk and again.ranking == [["B"], ["A", "C"]]
    assert Judgment.objects.count() == 1 and QueueItem.objects.get(pk=item.pk).judged == 1
