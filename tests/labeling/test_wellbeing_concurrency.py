"""The daily cap and "one attack per reviewer" under real concurrency: one rater claiming from
several threads at once, and many raters at once, each thread on its own database connection.

Runs on PostgreSQL (the rater row lock, ``SELECT ... FOR UPDATE SKIP LOCKED``) and on SQLite
(IMMEDIATE transactions), like ``test_claim_concurrency.py``.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections

from labeling.errors import ApplicationError
from labeling.models import Assignment, Attack, AttackExposure
from labeling.services import assignment_claim_next, judgment_submit
from labeling.services.redteam_reviews import AttackReviewExists, attack_claim_next, attack_review_submit
from labeling.services.wellbeing import DailyCapReached
from tests.factories import (
    AttackFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    ReviewerFactory,
    ReviewQueueFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _run(workers) -> tuple[list[BaseException], Counter[str]]:
    """Start every ``work()`` at once (a barrier), wait for all; errors and outcomes come back."""
    errors: list[BaseException] = []
    outcomes: Counter[str] = Counter()
    barrier = threading.Barrier(len(workers))

    def run(work):
        try:
            barrier.wait()
            for outcome in work():
                outcomes[outcome] += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    return errors, outcomes


def _judge_until_refused(rater, queue):
    def work():
        while True:
            try:
                assignment = assignment_claim_next(rater=rater, queue=queue)
            except DailyCapReached:
                yield "capped"
                return
            if assignment is None:
                yield "empty"
                return
            try:
                judgment_submit(assignment=assignment, preference=1)
            except ApplicationError:
                pass  # the same held item, submitted by this rater's other thread first
            yield "judged"

    return work


def _review_until_refused(rater, queue):
    def work():
        while True:
            try:
                attack = attack_claim_next(rater=rater, queue=queue)
            except DailyCapReached:
                yield "capped"
                return
            if attack is None:
                yield "empty"
                return
            try:
                attack_review_submit(attack=attack, reviewer=rater, verdict="reject")
            except AttackReviewExists:
                yield "conflict"  # never: the only other verdict on it could be this rater's own
            yield "reviewed"

    return work


def test_daily_cap_holds_when_one_rater_claims_from_many_threads():
    rater = RaterFactory()
    queue = QueueFactory(members=[rater], daily_cap=5)
    for _ in range(30):
        QueueItemFactory(queue=queue)
    errors, outcomes = _run([_judge_until_refused(rater, queue) for _ in range(6)])
    assert not errors, errors[:3]
    assert Assignment.objects.filter(rater=rater).count() == 5
    assert outcomes["capped"] == 6


def test_daily_cap_holds_per_rater_with_many_raters_claiming_at_once():
    raters = [RaterFactory() for _ in range(6)]
    queue = QueueFactory(members=raters, daily_cap=4, overlap=3)
    for _ in range(40):
        QueueItemFactory(queue=queue)
    errors, _ = _run([_judge_until_refused(r, queue) for r in raters for _ in range(2)])
    assert not errors, errors[:3]
    per_rater = Counter(Assignment.objects.values_list("rater_id", flat=True))
    assert set(per_rater.values()) == {4}  # enough items for all: each got exactly the cap
    pairs = list(Assignment.objects.values_list("item_id", "rater_id"))
    assert len(pairs) == len(set(pairs))


def test_review_cap_holds_when_one_reviewer_claims_from_many_threads():
    reviewer = ReviewerFactory()
    queue = ReviewQueueFactory(members=[reviewer], daily_cap=5)
    for _ in range(20):
        AttackFactory(queue=queue)
    errors, outcomes = _run([_review_until_refused(reviewer, queue) for _ in range(6)])
    assert not errors, errors[:3]
    assert outcomes["conflict"] == 0
    assert AttackExposure.objects.filter(rater=reviewer).count() == 5
    assert Attack.objects.exclude(status=Attack.Status.PENDING).count() == 5
    assert outcomes["capped"] == 6


def test_each_attack_goes_to_one_reviewer_with_many_claiming_at_once():
    reviewers = [ReviewerFactory() for _ in range(8)]
    queue = ReviewQueueFactory(members=reviewers, daily_cap=6)
    for i in range(40):
        AttackFactory(queue=queue, prescreen=(i % 5) / 5)
    errors, outcomes = _run([_review_until_refused(r, queue) for r in reviewers for _ in range(2)])
    assert not errors, errors[:3]
    assert outcomes["conflict"] == 0
    shown = Counter(AttackExposure.objects.values_list("attack_id", flat=True))
    assert set(shown.values()) == {1}, "an attack was leased to two reviewers at once"
    per_reviewer = Counter(AttackExposure.objects.values_list("rater_id", flat=True))
    assert sum(per_reviewer.values()) == 40  # 8 x 6 = 48 allowed: every attack was reviewed
    assert max(per_reviewer.values()) <= 6
    reviewed = Attack.objects.exclude(status=Attack.Status.PENDING)
    assert reviewed.count() == 40
    for attack in reviewed:
        assert AttackExposure.objects.get(attack=attack).rater_id == attack.reviewer_id
    assert not Attack.objects.filter(leased_to__isnull=False).exists()
