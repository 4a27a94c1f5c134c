"""Invariant 1 under real concurrency: many raters, each on its own PostgreSQL connection."""

from __future__ import annotations

import os
import threading
from collections import Counter

import pytest
from django.db import connection, connections

from labeling.models import Assignment, Judgment, QueueItem
from labeling.services import assignment_claim_next, judgment_submit
from tests.factories import QueueFactory, QueueItemFactory, RaterFactory

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql" and not os.environ.get("PREFLAB_REQUIRE_POSTGRES"),
    reason="needs PostgreSQL (set DATABASE_URL); CI runs it",
)


@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_raters_claim_and_submit_without_overshoot():
    assert connection.vendor == "postgresql", "CI must run this test on PostgreSQL"
    raters = [RaterFactory() for _ in range(8)]
    queue = QueueFactory(members=raters, overlap=3)
    for _ in range(30):
        QueueItemFactory(queue=queue)
    errors: list[BaseException] = []
    counts: Counter[int] = Counter()
    barrier = threading.Barrier(len(raters))

    def work(rater):
        try:
            barrier.wait()
            while True:
                assignment = assignment_claim_next(rater=rater, queue=queue)
                if assignment is None:
                    break
                # a refresh in between must hand back the same lease
                again = assignment_claim_next(rater=rater, queue=queue)
                assert again is not None and again.pk == assignment.pk
                _, created = judgment_submit(assignment=assignment, preference=1)
                assert created
                _, created = judgment_submit(assignment=assignment, preference=-1)
                assert not created
                counts[rater.pk] += 1
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(r,)) for r in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(counts.values()) == 30 * 3
    assert Judgment.objects.count() == 90
    per_item = Counter(Assignment.objects.filter(status="submitted").values_list("item_id", flat=True))
    assert set(per_item.values()) == {3}
    pairs = Assignment.objects.values_list("item_id", "rater_id")
    assert len(pairs) == len(set(pairs))
    assert set(QueueItem.objects.values_list("claimed", "judged")) == {(3, 3)}
