"""Gold auto-pause under real concurrency (PostgreSQL): several raters claim and submit at once
while one of them answers every gold item wrongly and crosses the threshold. The paused rater
gets nothing after the pause, the others work on to the end, and no counter drifts."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.db import connections

from labeling.errors import ApplicationError
from labeling.models import Assignment, Judgment, QueueItem, RaterQueuePause
from labeling.selectors.quality import comparison_orders
from labeling.services import assignment_claim_next, judgment_submit
from tests.factories import QueueFactory, QueueItemFactory, RaterFactory
from tests.integrity import assert_no_drift

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

GOLD = {"preference": -2}
MIN_ITEMS = 3


@pytest.mark.parametrize("good_raters", [5])
def test_the_rater_who_crosses_the_threshold_gets_no_more_items(good_raters):
    raters = [RaterFactory() for _ in range(good_raters + 1)]
    bad = raters[-1]
    queue = QueueFactory(
        overlap=2, gold_rate=0.4, gold_min_accuracy=0.7, gold_min_items=MIN_ITEMS, members=raters
    )
    for _ in range(12):
        QueueItemFactory(queue=queue, is_gold=True, gold_answer=GOLD)
    for _ in range(90):
        QueueItemFactory(queue=queue)
    canon = comparison_orders(
        list(QueueItem.objects.filter(queue=queue).values_list("comparison_id", flat=True))
    )

    errors: list[BaseException] = []
    refusals: Counter[int] = Counter()
    barrier = threading.Barrier(len(raters))

    def work(rater, rng):
        try:
            barrier.wait()
            while True:
                try:
                    assignment = assignment_claim_next(rater=rater, queue=queue, rng=rng)
                except ApplicationError as exc:
                    assert exc.status_code == 403 and "paused" in exc.message, exc.message
                    refusals[rater.pk] += 1
                    break
                if assignment is None:
                    break
                item = assignment.item
                if item.is_gold:
                    right = rater.pk != bad.pk
                    stored = -2 if right else 2
                    shown = stored if assignment.shown_order[0] == canon[item.comparison_id][0] else -stored
                else:
                    shown = rng.randint(-3, 3)
                _, created = judgment_submit(assignment=assignment, preference=shown)
                assert created
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(r, random.Random(7 + i))) for i, r in enumerate(raters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a rater thread hung (deadlock?)"
    assert not errors, errors[0]

    pause = RaterQueuePause.objects.get()
    assert pause.rater_id == bad.pk and pause.lifted_at is None
    assert (pause.gold_answered, pause.gold_correct) == (MIN_ITEMS, 0)
    assert refusals == Counter({bad.pk: 1})
    # Paused at the third wrong gold answer: no lease and no judgment after it.
    bad_gold = Judgment.objects.filter(assignment__rater=bad, assignment__item__is_gold=True).count()
    assert bad_gold == MIN_ITEMS
    assert not Assignment.objects.filter(rater=bad, created_at__gt=pause.created_at).exists()
    assert not Assignment.objects.filter(rater=bad, status=Assignment.Status.LEASED).exists()
    with pytest.raises(ApplicationError, match="paused"):
        assignment_claim_next(rater=bad, queue=queue)
    # The others worked the queue to the end: every real item has its overlap.
    assert set(QueueItem.objects.filter(queue=queue, is_gold=False).values_list("judged", flat=True)) == {2}
    assert_no_drift()
