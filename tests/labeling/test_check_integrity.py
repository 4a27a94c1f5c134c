"""``manage.py check_integrity``: zero drift on data made through the services, non-zero on
planted drift of each kind, and ``--fix`` recounts counters."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Assignment, QueueItem, Rubric
from labeling.selectors.integrity import CHECKS, integrity_drift
from labeling.services import assignment_claim_next, assignment_skip, judgment_submit
from tests.factories import (
    AssignmentFactory,
    CandidateFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
)

pytestmark = pytest.mark.django_db


def check_integrity(*args: str) -> tuple[int, str]:
    """Run the command; (exit status, output)."""
    from io import StringIO

    out = StringIO()
    try:
        call_command("check_integrity", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def worked_queue():
    """A queue worked through the services: judged, skipped and leased items."""
    raters = [RaterFactory() for _ in range(3)]
    queue = QueueFactory(members=raters, overlap=2)
    for _ in range(3):
        QueueItemFactory(queue=queue)
    first = assignment_claim_next(rater=raters[0], queue=queue)
    judgment_submit(assignment=first, preference=-1)
    second = assignment_claim_next(rater=raters[1], queue=queue)
    assignment_skip(assignment=second)
    assignment_claim_next(rater=raters[2], queue=queue)
    return queue


def test_no_drift_on_data_made_through_the_services(worked_queue):
    status, out = check_integrity()
    assert status == 0, out
    assert out.count(" ok  ") == len(CHECKS)
    report = json.loads(check_integrity("--json")[1])
    assert report["ok"] and report["drift"] == [] and set(report["checks"]) == set(CHECKS)


def test_planted_counter_drift_is_reported_and_fixed(worked_queue):
    item = QueueItem.objects.filter(queue=worked_queue, judged=1).get()
    assert item.claimed == 2  # the judgment and a live lease (the skip gave its slot back)
    QueueItem.objects.filter(pk=item.pk).update(claimed=1, judged=0)
    status, out = check_integrity()
    assert status == 1
    assert f"item_claimed: QueueItem {item.pk}: expected 2, found 1" in out
    assert f"item_judged: QueueItem {item.pk}: expected 1, found 0" in out
    status, out = check_integrity("--fix")
    assert status == 0 and "recounted 1 queue item(s)" in out
    item.refresh_from_db()
    assert (item.claimed, item.judged) == (2, 1)


@pytest.mark.parametrize(
    ("plant", "check"),
    [
        (
            lambda q: Assignment.objects.filter(item__queue=q, status="leased").update(status="submitted"),
            "submitted_has_judgment",
        ),
        (
            lambda q: Assignment.objects.filter(item__queue=q, status="leased").update(
                shown_order=[998, 999]
            ),
            "shown_order",
        ),
        (lambda q: Rubric.objects.filter(pk=q.rubric_id).update(frozen=False), "rubric_frozen"),
        (lambda q: [AssignmentFactory(item=q.items.first()) for _ in range(2)], "item_overlap"),
    ],
)
def test_each_planted_break_is_named(worked_queue, plant, check):
    plant(worked_queue)
    assert check in {d.check for d in integrity_drift()}
    status, _ = check_integrity()
    assert status == 1


def test_comparison_drift_is_found():
    item = QueueItemFactory()
    stranger = CandidateFactory(prompt=PromptFactory())
    member = item.comparison.members.get(position=1)
    member.candidate = stranger
    member.save()
    found = {d.check for d in integrity_drift()}
    assert {"comparison_members", "comparison_prompt"} <= found


def test_queue_option_limits_the_queue_checks(worked_queue):
    other = QueueItemFactory()
    QueueItem.objects.filter(pk=other.pk).update(claimed=1)
    assert check_integrity("--queue", str(worked_queue.pk))[0] == 0
    assert check_integrity("--queue", str(other.queue_id))[0] == 1


@pytest.mark.django_db(transaction=True)
def test_session_drift_is_found(fake_backend):
    from labeling.models import SessionSeed, Turn
    from labeling.services.session_templates import session_template_create
    from labeling.services.sessions import session_start
    from model_runner.services import generator_get_bundled

    trainer = RaterFactory()
    queue = session_template_create(
        name="chat",
        rubric=QueueFactory().rubric,
        generators=[generator_get_bundled()],
        seeds=[PromptFactory(messages=[{"role": "user", "content": "Hello"}])],
        members=[trainer],
    )
    session = session_start(trainer=trainer, queue=queue)
    assert check_integrity()[0] == 0  # the seed's turn made and ready
    SessionSeed.objects.update(started=3)
    Turn.objects.filter(session=session, position=1).update(position=5)
    found = {d.check for d in integrity_drift()}
    assert {"seed_started", "session_branch"} <= found
