"""Sensitive topics under real concurrency: many raters claim, refresh and judge at once, each
thread on its own database connection, and no item goes past its tag's overlap and no rater past
a tag's share cap (``labeling.selectors.tag_policies``).

Runs on PostgreSQL (row locks, SKIP LOCKED; CI's PostgreSQL run) and on SQLite (IMMEDIATE
transactions), as ``test_claim_concurrency.py``.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections

from labeling.models import Assignment, QueueItem
from labeling.selectors.tag_policies import tag_share_cap
from labeling.services import assignment_claim_next, judgment_submit
from tests.factories import PromptFactory, QueueFactory, QueueItemFactory, RaterFactory, make_pair
from tests.integrity import assert_no_drift

pytestmark = pytest.mark.django_db(transaction=True)

RATERS = 10


def _run(raters, queue) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(raters))

    def work(rater):
        try:
            barrier.wait()
            while (lease := assignment_claim_next(rater=rater, queue=queue)) is not None:
                again = assignment_claim_next(rater=rater, queue=queue)
                assert again is not None and again.pk == lease.pk, "a refresh burned an item"
                _, created = judgment_submit(assignment=lease, preference=1)
                assert created
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(r,)) for r in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a rater thread hung (deadlock?)"
    return errors


def test_many_raters_keep_per_tag_overlaps_and_share_caps():
    raters = [RaterFactory() for _ in range(RATERS)]
    # politics: 5 judgments per item (the queue wants 2); religion: 3 per item, and no rater more
    # than 5% of the 20 x 3 = 60 religion judgments wanted: a cap of 3 each, which binds.
    policies = {"politics": {"overlap": 5}, "religion": {"overlap": 3, "max_rater_share": 0.05}}
    queue = QueueFactory(members=raters, overlap=2, tag_policies=policies)
    kinds: dict[int, str] = {}
    for tags, n in ((["politics"], 10), (["religion"], 20), ([], 20)):
        for i in range(n):
            # interleaved priorities: every rater walks past items of all three kinds
            prompt = PromptFactory(tags=tags)
            item = QueueItemFactory(queue=queue, comparison=make_pair(prompt=prompt), priority=-i)
            kinds[item.pk] = tags[0] if tags else "plain"
    cap = tag_share_cap(share=0.05, target=60)
    assert cap == 3

    errors = _run(raters, queue)
    assert not errors, errors[:3]

    per_item = Counter(Assignment.objects.filter(status="submitted").values_list("item_id", flat=True))
    wanted = {"politics": 5, "religion": 3, "plain": 2}
    for item_id, kind in kinds.items():
        if kind == "religion":
            assert per_item[item_id] <= wanted[kind], (kind, item_id, per_item[item_id])
        else:  # ten raters fill every item to exactly its overlap, never past it
            assert per_item[item_id] == wanted[kind], (kind, item_id, per_item[item_id])
    religion = Counter(
        rater_id
        for rater_id, item_id in Assignment.objects.filter(status="submitted").values_list(
            "rater_id", "item_id"
        )
        if kinds[item_id] == "religion"
    )
    # Each rater reached the cap (there was room for more) and none went past it.
    assert religion == {r.pk: cap for r in raters}
    assert not Assignment.objects.filter(status="leased").exists()
    for claimed, judged, item_id in QueueItem.objects.values_list("claimed", "judged", "id"):
        assert claimed == judged == per_item.get(item_id, 0)
    assert_no_drift()
