"""Invariant 1 under real concurrency: many raters, each thread on its own database connection.

Runs on PostgreSQL (row locks, SKIP LOCKED) and on SQLite (IMMEDIATE transactions).
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.db import connections

from labeling.models import Assignment, Judgment, QueueItem
from labeling.services import assignment_claim_next, assignment_skip, judgment_submit
from tests.factories import QueueFactory, QueueItemFactory, RaterFactory
from tests.integrity import assert_no_drift

pytestmark = pytest.mark.django_db(transaction=True)


def _run_raters(raters, queue, *, skip_rate: float, seed: int) -> tuple[list[BaseException], Counter[int]]:
    errors: list[BaseException] = []
    judged: Counter[int] = Counter()
    barrier = threading.Barrier(len(raters))

    def work(rater, rng):
        try:
            barrier.wait()
            while True:
                assignment = assignment_claim_next(rater=rater, queue=queue)
                if assignment is None:
                    break
                again = assignment_claim_next(rater=rater, queue=queue)
                assert again is not None and again.pk == assignment.pk, "a refresh burned an item"
                if rng.random() < skip_rate:
                    assignment_skip(assignment=assignment, reason="load test")
                    continue
                _, created = judgment_submit(assignment=assignment, preference=rng.randint(-3, 3))
                assert created
                _, created = judgment_submit(assignment=assignment, preference=0)
                assert not created, "a replay wrote twice"
                judged[rater.pk] += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(r, random.Random(seed + i))) for i, r in enumerate(raters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a rater thread hung (deadlock?)"
    return errors, judged


@pytest.mark.parametrize(("raters", "items", "overlap", "skip_rate"), [(8, 150, 3, 0.0), (6, 120, 2, 0.15)])
def test_many_raters_claim_and_submit_without_overshoot(raters, items, overlap, skip_rate):
    people = [RaterFactory() for _ in range(raters)]
    queue = QueueFactory(members=people, overlap=overlap)
    for _ in range(items):
        QueueItemFactory(queue=queue)
    errors, judged = _run_raters(people, queue, skip_rate=skip_rate, seed=items)
    assert not errors, errors[:3]

    per_item = Counter(Assignment.objects.filter(status="submitted").values_list("item_id", flat=True))
    assert max(per_item.values()) <= overlap
    assert Judgment.objects.count() == sum(judged.values())
    pairs = list(Assignment.objects.values_list("item_id", "rater_id"))
    assert len(pairs) == len(set(pairs)), "a rater got an item twice"
    assert not Assignment.objects.filter(status="leased").exists()
    for claimed, judged_n, item_id in QueueItem.objects.values_list("claimed", "judged", "id"):
        assert claimed == judged_n == per_item.get(item_id, 0)
    if skip_rate == 0:
        # everyone kept going until nothing was left: every item reached exactly its overlap
        assert set(per_item.values()) == {overlap} and len(per_item) == items
    assert_no_drift()
