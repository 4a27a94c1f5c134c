"""Queue engine rules: leases, expiry, skip policies, gold mixing, qualification, adaptive order."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.errors import ApplicationError, Conflict
from labeling.models import Assignment, Queue, QueueItem
from labeling.ratings import bradley_terry
from labeling.selectors import comparison_orders
from labeling.services import (
    assignment_claim_next,
    assignment_claim_next_any,
    assignment_skip,
    assignments_expire,
    judgment_submit,
    queue_reprioritize,
)
from labeling.tasks import assignments_expire_task
from tests.factories import (
    CandidateFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    make_comparison,
    make_pair,
)

pytestmark = pytest.mark.django_db


def _queue(n_items=3, **kwargs):
    raters = kwargs.pop("raters", None) or [RaterFactory(), RaterFactory(), RaterFactory()]
    queue = QueueFactory(members=raters, **kwargs)
    items = [QueueItemFactory(queue=queue) for _ in range(n_items)]
    return queue, raters, items


def test_lease_expiry_with_a_frozen_clock():
    queue, (a, b, _), _ = _queue(1, lease_seconds=60)
    t0 = timezone.now()
    mine = assignment_claim_next(rater=a, queue=queue, now=t0)
    assert assignment_claim_next(rater=b, queue=queue, now=t0 + timedelta(seconds=59)) is None
    # the periodic task and a claim both release expired leases; the slot is released once
    assert assignments_expire(now=t0 + timedelta(seconds=61)) == 1
    assert assignments_expire(now=t0 + timedelta(seconds=61)) == 0
    theirs = assignment_claim_next(rater=b, queue=queue, now=t0 + timedelta(seconds=61))
    assert theirs is not None and theirs.item_id == mine.item_id
    mine.refresh_from_db()
    assert mine.status == Assignment.Status.EXPIRED
    assert QueueItem.objects.get().claimed == 1


def test_beat_task_expires_leases():
    queue, (a, *_), _ = _queue(1)
    assignment = assignment_claim_next(rater=a, queue=queue)
    Assignment.objects.filter(pk=assignment.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert assignments_expire_task() == 1
    assert QueueItem.objects.get().claimed == 0


def test_skip_policy_others_never_returns_to_me():
    queue, (a, b, _), _ = _queue(1, skip_policy=Queue.SkipPolicy.OTHERS)
    assignment_skip(assignment=assignment_claim_next(rater=a, queue=queue), reason="unsure")
    assert assignment_claim_next(rater=a, queue=queue) is None
    assert assignment_claim_next(rater=b, queue=queue) is not None


def test_skip_policy_later_comes_back_after_everything_else():
    queue, (a, *_), items = _queue(2, skip_policy=Queue.SkipPolicy.LATER)
    first = assignment_claim_next(rater=a, queue=queue)
    assignment_skip(assignment=first, reason="come back")
    second = assignment_claim_next(rater=a, queue=queue)
    assert second.item_id != first.item_id
    judgment_submit(assignment=second, preference=1)
    again = assignment_claim_next(rater=a, queue=queue)
    assert again.pk == first.pk and again.status == Assignment.Status.LEASED
    judgment_submit(assignment=again, preference=-1)
    assert assignment_claim_next(rater=a, queue=queue) is None
    assert QueueItem.objects.filter(judged=1).count() == 2


def test_skip_policy_retire_withdraws_item_for_everyone():
    queue, (a, b, _), _ = _queue(1, skip_policy=Queue.SkipPolicy.RETIRE)
    assignment_skip(assignment=assignment_claim_next(rater=a, queue=queue), reason="broken item")
    assert QueueItem.objects.get().retired
    assert assignment_claim_next(rater=b, queue=queue) is None


def test_skip_is_idempotent_and_refused_after_judgment():
    queue, (a, *_), _ = _queue(2)
    first = assignment_claim_next(rater=a, queue=queue)
    assignment_skip(assignment=first)
    assignment_skip(assignment=first)
    assert QueueItem.objects.get(pk=first.item_id).claimed == 0
    second = assignment_claim_next(rater=a, queue=queue)
    judgment_submit(assignment=second, preference=2)
    with pytest.raises(Conflict):
        assignment_skip(assignment=second)


def test_max_open_leases_and_fresh_claims():
    queue, (a, *_), _ = _queue(3, max_open_leases=2)
    one = assignment_claim_next(rater=a, queue=queue)
    two = assignment_claim_next(rater=a, queue=queue, fresh=True)
    assert one.pk != two.pk
    with pytest.raises(Conflict):
        assignment_claim_next(rater=a, queue=queue, fresh=True)
    assert assignment_claim_next(rater=a, queue=queue).pk == one.pk


def test_closed_queue_hands_out_nothing():
    queue, (a, *_), _ = _queue(1, status=Queue.Status.CLOSED)
    assert assignment_claim_next(rater=a, queue=queue) is None


def test_gold_mixed_in_at_the_gold_rate():
    rater = RaterFactory()
    queue = QueueFactory(members=[rater], gold_rate=0.2, overlap=1)
    for _ in range(1000):
        QueueItemFactory(queue=queue)
    for _ in range(300):
        QueueItemFactory(queue=queue, is_gold=True, gold_answer={"preference": -2})
    rng = random.Random(7)
    gold = 0
    for _ in range(600):
        assignment = assignment_claim_next(rater=rater, queue=queue, rng=rng)
        gold += assignment.item.is_gold
        judgment_submit(assignment=assignment, preference=1)
    # binomial(600, 0.2): mean 120, sd ~9.8; 4 sd either side
    assert 80 <= gold <= 160


def test_gold_is_not_limited_by_overlap_and_stops_with_real_work():
    raters = [RaterFactory() for _ in range(3)]
    queue = QueueFactory(members=raters, gold_rate=1.0, overlap=1)
    gold_item = QueueItemFactory(queue=queue, is_gold=True, gold_answer={"preference": 1})
    for r in raters:
        a = assignment_claim_next(rater=r, queue=queue)
        assert a.item_id == gold_item.pk
        judgment_submit(assignment=a, preference=1)
    assert assignment_claim_next(rater=raters[0], queue=queue) is None


def test_qualification_gate_uses_gold_accuracy():
    rater = RaterFactory()
    exam = QueueFactory(members=[rater], gold_rate=1.0, overlap=1, name="exam")
    for _ in range(3):
        QueueItemFactory(queue=exam, is_gold=True, gold_answer={"preference": -3})
    work = QueueFactory(
        members=[rater], qualification=exam, qualification_min_items=3, qualification_min_accuracy=0.6
    )
    QueueItemFactory(queue=work)
    with pytest.raises(ApplicationError) as info:
        assignment_claim_next(rater=rater, queue=work)
    assert info.value.status_code == 403 and "exam" in info.value.message
    canon = None
    for i in range(3):
        a = assignment_claim_next(rater=rater, queue=exam)
        canon = comparison_orders([a.item.comparison_id])[a.item.comparison_id]
        # answer "first candidate better" in the shown labels, twice right, once wrong
        first_is_a = a.shown_order[0] == canon[0]
        right = -2 if first_is_a else 2
        judgment_submit(assignment=a, preference=right if i < 2 else -right)
    assert assignment_claim_next(rater=rater, queue=work) is not None


def test_claim_next_any_follows_queue_priority():
    rater = RaterFactory()
    low = QueueFactory(members=[rater], priority=1)
    high = QueueFactory(members=[rater], priority=5)
    QueueItemFactory(queue=low)
    QueueItemFactory(queue=high)
    assert assignment_claim_next_any(rater=rater).item.queue_id == high.pk


def test_bradley_terry_orders_players_and_stays_finite():
    outcomes = [("a", "b", 1.0)] * 8 + [("b", "c", 1.0)] * 8 + [("a", "c", 1.0)] * 3
    scores = bradley_terry(outcomes)
    assert scores["a"] > scores["b"] > scores["c"]
    assert abs(sum(scores.values())) < 1e-9
    assert bradley_terry([("x", "y", 0.5)] * 4)["x"] == pytest.approx(0.0, abs=1e-6)


def test_adaptive_pairing_prefers_uncertain_pairs():
    rater = RaterFactory()
    queue = QueueFactory(members=[rater], overlap=10, pairing=Queue.Pairing.ADAPTIVE)
    prompt = PromptFactory()
    gen = GeneratorFactory()
    good, mid, bad = (CandidateFactory(prompt=prompt, generator=gen, sample_index=i) for i in range(3))
    pairs = {
        "good-bad": QueueItem.objects.create(queue=queue, comparison=make_comparison(prompt, [good, bad])),
        "good-mid": QueueItem.objects.create(queue=queue, comparison=make_comparison(prompt, [good, mid])),
        "mid-bad": QueueItem.objects.create(queue=queue, comparison=make_comparison(prompt, [mid, bad])),
    }
    queue_reprioritize(queue=queue)
    assert len({QueueItem.objects.get(pk=i.pk).priority for i in pairs.values()}) == 1
    # many judgments say good >> bad; good vs mid gets one close call
    for _ in range(6):
        other = RaterFactory()
        queue.members.add(other)
        a = Assignment.objects.create(
            item=pairs["good-bad"], rater=other, shown_order=[good.pk, bad.pk],
            expires_at=timezone.now() + timedelta(minutes=5),
        )  # fmt: skip
        QueueItem.objects.filter(pk=pairs["good-bad"].pk).update(claimed=a.item.claimed + 1)
        judgment_submit(assignment=a, preference=-3)
        pairs["good-bad"].refresh_from_db()
    queue_reprioritize(queue=queue)
    prio = {k: QueueItem.objects.get(pk=v.pk).priority for k, v in pairs.items()}
    assert prio["good-bad"] < prio["good-mid"]
    assert prio["good-bad"] < prio["mid-bad"]
    assert assignment_claim_next(rater=rater, queue=queue).item_id != pairs["good-bad"].pk


def test_claimed_item_rows_match_the_orm():
    """The claim's hand-written pick builds the same instances as the ORM would (JSON, dates, bools)."""
    queue, (a, *_), _ = _queue(0)
    prompt = PromptFactory(messages=[{"role": "user", "content": "ünï ✓"}], tags=["x", "y"])
    item = QueueItemFactory(
        queue=queue,
        comparison=make_pair(prompt=prompt),
        is_gold=False,
        gold_answer={"preference": -2},
        priority=7,
    )
    assignment = assignment_claim_next(rater=a, queue=queue)
    picked = assignment.item
    fresh = QueueItem.objects.select_related("comparison__prompt").get(pk=item.pk)
    for got, want in ((picked, fresh), (picked.comparison, fresh.comparison)):
        for field in type(want)._meta.concrete_fields:
            if field.name != "claimed":
                assert getattr(got, field.attname) == getattr(want, field.attname), field.name
    for field in type(fresh.comparison.prompt)._meta.concrete_fields:
        assert getattr(picked.comparison.prompt, field.attname) == getattr(
            fresh.comparison.prompt, field.attname
        )
    assert picked.gold_answer == {"preference": -2} and picked.comparison.prompt.tags == ["x", "y"]
    assert picked.created_at.tzinfo is not None


def test_claim_and_submit_query_counts(django_assert_max_num_queries):
    queue, (a, *_), _ = _queue(5)
    assignment_claim_next(rater=a, queue=queue)  # warm the membership path
    first = Assignment.objects.get(rater=a)
    judgment_submit(assignment=first, preference=1)
    # claim: expiry scan, rater lock + membership + held lease (+ synchronous_commit on PostgreSQL),
    # pick+lock item, claimed+1, insert (+ savepoint statements where the test wraps a transaction);
    # PostgreSQL does claimed+1 and the insert in one statement
    with django_assert_max_num_queries(7):
        assignment = assignment_claim_next(rater=a, queue=queue)
    # submit: criteria (the rubric is not frozen yet), assignment status, insert, judged+1, freeze;
    # PostgreSQL does status, insert and judged+1 in one statement
    with django_assert_max_num_queries(7):
        judgment_submit(assignment=assignment, preference=-1)


def test_claim_time_expiry_scan_is_throttled_per_queue(settings):
    settings.PREFLAB_LEASE_SCAN_SECONDS = 1
    queue, (a, b, _), _ = _queue(1, lease_seconds=60)
    t0 = timezone.now()
    assignment_claim_next(rater=a, queue=queue, now=t0 + timedelta(seconds=0))
    # b's claim scans (first scan at this time) but a's lease is still live
    assert assignment_claim_next(rater=b, queue=queue, now=t0 + timedelta(seconds=59.5)) is None
    # the lease ran out 0.3 s ago, but the last scan was less than a second ago: not yet seen
    assert assignment_claim_next(rater=b, queue=queue, now=t0 + timedelta(seconds=60.3)) is None
    # a second after the last scan the claim scans again and takes the expired slot
    taken = assignment_claim_next(rater=b, queue=queue, now=t0 + timedelta(seconds=60.6))
    assert taken is not None


def test_beat_reprioritizes_adaptive_queues():
    from labeling.tasks import queues_reprioritize_task

    queue = QueueFactory(pairing=Queue.Pairing.ADAPTIVE)
    item = QueueItemFactory(queue=queue)
    QueueItem.objects.filter(pk=item.pk).update(priority=-5)
    assert queues_reprioritize_task() == 1
    assert QueueItem.objects.get(pk=item.pk).priority > 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claim_skips_the_commit_flush_only_for_its_own_transaction(monkeypatch):
    """PostgreSQL: the claim's transaction runs with synchronous_commit off; nothing after it does."""
    from django.db import connection

    from labeling.services import claims

    queue, (a, *_), _ = _queue(2)
    seen = []
    pick = claims._pick_item

    def spy(**kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            seen.append(cursor.fetchone()[0])
        return pick(**kwargs)

    monkeypatch.setattr(claims, "_pick_item", spy)
    assert assignment_claim_next(rater=a, queue=queue) is not None
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        after = cursor.fetchone()[0]
    assert seen == ["off"] and after == "on"
