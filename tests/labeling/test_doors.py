"""One door per operation: the API and the judging page claim, submit and skip through the same
gatekeepers and services, so every rule holds through both. Each test here runs once per door,
through the front door (HTTP), and must give the same outcome on both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from labeling.models import Assignment, Queue, QueueItem
from labeling.services import assignment_claim_next, judgment_submit
from tests.factories import (
    AdminFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    api_key_for,
    make_pair,
)

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Outcome:
    kind: str  # item | none | not_found | refused | saved | replayed
    assignment_id: int | None = None
    message: str = ""


class ApiDoor:
    """``POST /api/v1/queues/{id}/next/`` and friends, with a real token."""

    name = "api"

    def __init__(self, user: Any) -> None:
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Token {api_key_for(user)}")

    def next(self, queue_id: int) -> Outcome:
        response = self.client.post(f"/api/v1/queues/{queue_id}/next/")
        if response.status_code == 201:
            return Outcome("item", response.json()["id"])
        if response.status_code == 204:
            return Outcome("none")
        if response.status_code == 404:
            return Outcome("not_found", message=response.json()["detail"])
        assert response.status_code in {403, 409}, response.content  # the refusals, named exactly below
        return Outcome("refused", message=response.json()["detail"])

    def submit(self, assignment_id: int, preference: int) -> Outcome:
        response = self.client.post(
            f"/api/v1/assignments/{assignment_id}/judgment/", {"preference": preference}, format="json"
        )
        if response.status_code == 201:
            return Outcome("saved", assignment_id)
        if response.status_code == 200:
            return Outcome("replayed", assignment_id)
        assert response.status_code == 409, response.content
        return Outcome("refused", message=response.json()["detail"])

    def skip(self, assignment_id: int) -> Outcome:
        response = self.client.post(f"/api/v1/assignments/{assignment_id}/skip/")
        if response.status_code == 200:
            return Outcome("saved", assignment_id)
        assert response.status_code == 409, response.content
        return Outcome("refused", message=response.json()["detail"])


class PageDoor:
    """``/rate/{id}/`` and the judging page's forms, logged in as the rater."""

    name = "page"

    def __init__(self, user: Any) -> None:
        self.client = Client()
        self.client.force_login(user)

    def _messages(self, response: Any) -> str:
        return " ".join(str(m) for m in response.context["messages"]) if response.context else ""

    def next(self, queue_id: int) -> Outcome:
        response = self.client.get(f"/rate/{queue_id}/")
        if response.status_code == 404:
            return Outcome("not_found")
        if response.status_code == 200:
            assert "labeling/rate_done.html" in [t.name for t in response.templates]
            return Outcome("none")
        assert response.status_code == 302, response.status_code
        if response.url.startswith("/rate/assignment/"):
            return Outcome("item", int(response.url.rstrip("/").rsplit("/", 1)[1]))
        assert response.url == "/rate/"
        return Outcome("refused", message=self._messages(self.client.get(response.url)))

    def submit(self, assignment_id: int, preference: int) -> Outcome:
        response = self.client.post(
            f"/rate/assignment/{assignment_id}/", {"preference": str(preference)}, follow=True
        )
        message = self._messages(response)
        if "Already saved." in message or "already judged" in message:
            return Outcome("replayed", assignment_id)
        if "Saved." in message:
            return Outcome("saved", assignment_id)
        return Outcome("refused", message=message)

    def skip(self, assignment_id: int) -> Outcome:
        response = self.client.post(f"/rate/assignment/{assignment_id}/", {"action": "skip"}, follow=True)
        message = self._messages(response)
        return (
            Outcome("saved", assignment_id) if "Skipped." in message else Outcome("refused", message=message)
        )


@pytest.fixture(params=[ApiDoor, PageDoor], ids=["api", "page"])
def door(request):
    """A factory: ``door(user)`` is that user at one of the two doors."""
    return request.param


def _queue(n_items: int = 2, **kwargs: Any) -> tuple[Queue, list[QueueItem]]:
    raters = kwargs.pop("members", [])
    queue = QueueFactory(members=raters, **kwargs)
    return queue, [QueueItemFactory(queue=queue) for _ in range(n_items)]


# --------------------------------------------------------------------------- membership


def test_a_member_gets_an_item_and_the_same_one_on_a_refresh(door):
    rater = RaterFactory()
    queue, _ = _queue(members=[rater])
    first = door(rater).next(queue.pk)
    assert first.kind == "item"
    assert door(rater).next(queue.pk) == first
    assert QueueItem.objects.filter(queue=queue).values_list("claimed", flat=True).order_by("id")[0] == 1


def test_non_members_and_unknown_queues_are_not_found_alike(door):
    member, outsider, admin = RaterFactory(), RaterFactory(), AdminFactory()
    queue, _ = _queue(members=[member])
    assert door(outsider).next(queue.pk).kind == "not_found"
    assert door(admin).next(queue.pk).kind == "not_found"  # admins manage queues; members work on them
    assert door(member).next(queue.pk + 1000).kind == "not_found"
    assert not Assignment.objects.exists()


def test_a_paused_queue_gives_nothing(door):
    rater = RaterFactory()
    queue, _ = _queue(members=[rater], status=Queue.Status.PAUSED)
    assert door(rater).next(queue.pk) == Outcome("none")


# -------------------------------------------------------------------------------- caps


def test_the_overlap_caps_each_item(door):
    a, b = RaterFactory(), RaterFactory()
    queue, _ = _queue(1, members=[a, b], overlap=1)
    got = door(a).next(queue.pk)
    assert door(a).submit(got.assignment_id, -2) == Outcome("saved", got.assignment_id)
    assert door(b).next(queue.pk) == Outcome("none")
    assert door(a).next(queue.pk) == Outcome("none")  # never the same item twice


def test_a_replay_records_one_judgment_and_a_judged_item_cannot_be_skipped(door):
    rater = RaterFactory()
    queue, _ = _queue(1, members=[rater])
    got = door(rater).next(queue.pk)
    assert door(rater).submit(got.assignment_id, 1).kind == "saved"
    assert door(rater).submit(got.assignment_id, -3).kind == "replayed"
    refused = door(rater).skip(got.assignment_id)
    assert refused.kind == "refused" and "already judged" in refused.message
    assert QueueItem.objects.get(queue=queue).judged == 1


def test_a_skip_frees_the_slot_for_others_only(door):
    a, b = RaterFactory(), RaterFactory()
    queue, (item,) = _queue(1, members=[a, b], overlap=1)
    got = door(a).next(queue.pk)
    assert door(a).skip(got.assignment_id).kind == "saved"
    assert door(a).next(queue.pk) == Outcome("none")
    assert door(b).next(queue.pk).kind == "item"


# ---------------------------------------------------------------------- content opt-outs


def test_a_queue_wide_warning_the_rater_opted_out_of_is_refused_with_the_reason(door):
    rater = RaterFactory(content_opt_outs=["violence"])
    queue, _ = _queue(members=[rater], content_warning="Graphic fights", content_warning_category="violence")
    refused = door(rater).next(queue.pk)
    assert refused.kind == "refused"
    assert "Violence or gore" in refused.message and "opted out" in refused.message
    assert not Assignment.objects.exists()


def test_an_item_carrying_opted_out_content_is_passed_on_unseen(door):
    rater, other = RaterFactory(content_opt_outs=["hate"]), RaterFactory()
    queue = QueueFactory(members=[rater, other], overlap=1)
    warned = QueueItemFactory(queue=queue, comparison=make_pair(PromptFactory(tags=["cw:hate"])))
    plain = QueueItemFactory(queue=queue)
    got = door(rater).next(queue.pk)
    assert got.kind == "item" and Assignment.objects.get(pk=got.assignment_id).item_id == plain.pk
    passed = Assignment.objects.get(item=warned, rater=rater)
    assert passed.status == Assignment.Status.SKIPPED and passed.skip_reason == "content opt-out: hate"
    # its slot went back: another rater gets the warned item
    theirs = door(other).next(queue.pk)
    assert Assignment.objects.get(pk=theirs.assignment_id).item_id == warned.pk


# -------------------------------------------------------------------------------- gold


def test_gold_is_mixed_in_for_every_rater_and_never_outlives_the_real_items(door):
    a, b = RaterFactory(), RaterFactory()
    queue = QueueFactory(members=[a, b], overlap=1, gold_rate=1.0)
    gold = QueueItemFactory(queue=queue, is_gold=True, gold_answer={"preference": -2})
    real = QueueItemFactory(queue=queue)
    for rater in (a, b):  # gold has no overlap limit: both raters answer it
        got = door(rater).next(queue.pk)
        assert Assignment.objects.get(pk=got.assignment_id).item_id == gold.pk
        assert door(rater).submit(got.assignment_id, -1).kind == "saved"
    got = door(a).next(queue.pk)
    assert Assignment.objects.get(pk=got.assignment_id).item_id == real.pk
    assert door(a).submit(got.assignment_id, 0).kind == "saved"
    # the real item is full: b gets nothing, not more gold
    assert door(b).next(queue.pk) == Outcome("none")


# ----------------------------------------------------------------------- qualification


def test_a_queue_behind_a_qualification_is_refused_until_it_is_passed(door):
    rater = RaterFactory()
    exam = QueueFactory(members=[rater], overlap=1, gold_rate=1.0)
    gold = [QueueItemFactory(queue=exam, is_gold=True, gold_answer={"preference": -2}) for _ in range(2)]
    queue, _ = _queue(members=[rater], qualification=exam, qualification_min_items=2)
    refused = door(rater).next(queue.pk)
    assert refused.kind == "refused" and "qualification" in refused.message and exam.name in refused.message
    for _ in gold:  # answer the exam's gold right (A better, in the shown order)
        lease = assignment_claim_next(rater=rater, queue=exam)
        canonical_first = lease.item.comparison.members.get(position=0).candidate_id
        judgment_submit(assignment=lease, preference=-2 if lease.shown_order[0] == canonical_first else 2)
    assert door(rater).next(queue.pk).kind == "item"
