"""The queue statistics' stored facts (labeling.models.stats, folded in by
labeling.services.stats_facts, read by labeling.selectors.stats_facts.stored_judgment_facts):
on random queues the stored path gives the very arrays and figures of the full computation from
the judgments, before and after folds, after undos, new gold items and another rubric."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone

from labeling import tasks
from labeling.models import (
    Criterion,
    Judgment,
    JudgmentFact,
    JudgmentFactChunk,
    JudgmentFactsState,
    QueueItem,
)
from labeling.selectors import queue_stats, stats_facts
from labeling.services import assignment_claim_next, assignment_skip, judgment_submit
from labeling.services.assignments import assignment_reopen_last
from labeling.services.stats_facts import judgment_facts_fold, judgment_facts_fold_all
from tests.factories import CriterionFactory, QueueFactory, QueueItemFactory, RaterFactory, RubricFactory

pytestmark = pytest.mark.django_db

LATER = timedelta(minutes=5)  # a fold "later": every judgment made so far counts as settled


def _random_queue(rng: random.Random, *, raters: int = 5, items: int = 14, overlap: int = 3):
    people = RaterFactory.create_batch(raters)
    queue = QueueFactory(members=people, overlap=overlap)
    CriterionFactory(rubric=queue.rubric, key="honest", kind=Criterion.Kind.PREFERENCE, question="Honest?")
    CriterionFactory(rubric=queue.rubric, key="quality", kind=Criterion.Kind.LIKERT, question="Quality?")
    CriterionFactory(
        rubric=queue.rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful?", required=False
    )
    QueueItemFactory.create_batch(items, queue=queue)
    return queue, people


def _judge_some(rng: random.Random, queue, people, *, rounds: int) -> int:
    """Each round, a random rater claims and answers (or skips) at random; returns judgments made."""
    made = 0
    for _ in range(rounds):
        rater = rng.choice(people)
        assignment = assignment_claim_next(rater=rater, queue=queue)
        if assignment is None:
            continue
        if rng.random() < 0.1:
            assignment_skip(assignment=assignment)
            continue
        preference = rng.randint(-3, 3)
        criteria = {"honest": rng.randint(-3, 3), "quality": {"A": rng.randint(1, 7), "B": rng.randint(1, 7)}}
        if rng.random() < 0.7:
            criteria["harmful"] = rng.random() < 0.3
        judgment_submit(
            assignment=assignment,
            preference=preference,
            criteria=criteria,
            flags=["both_bad"] if preference == 0 and rng.random() < 0.5 else None,
            active_seconds=None if rng.random() < 0.15 else round(rng.uniform(0.5, 40), 3),
        )
        made += 1
    return made


def _criteria(queue):
    return queue_stats.queue_stats_criteria(queue)


def _assert_same_facts(queue) -> None:
    """The stored path's arrays equal the full computation's, field by field (nan where nan)."""
    full = stats_facts.judgment_facts(queue=queue, criteria=_criteria(queue))
    stored = stats_facts.stored_judgment_facts(queue=queue, criteria=_criteria(queue))
    for name in ("ids", "rater", "item", "gold", "active", "preference", "swapped", "created", "both_bad"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(full, name), err_msg=name)
    assert full.answers is not None and stored.answers is not None
    assert list(stored.answers) == list(full.answers)
    for key in full.answers:
        np.testing.assert_array_equal(stored.answers[key], full.answers[key], err_msg=key)


def _full_stats(queue, monkeypatch) -> dict:
    """The statistics computed the old way, every array from the judgments."""
    with monkeypatch.context() as patched:
        patched.setattr(
            stats_facts,
            "stored_judgment_facts",
            lambda *, queue, criteria=None: stats_facts.judgment_facts(queue=queue, criteria=criteria),
        )
        answer = queue_stats.queue_stats_compute(queue=queue)
    answer.pop("computed_at")
    return answer


def _stats(queue) -> dict:
    answer = queue_stats.queue_stats_compute(queue=queue)
    answer.pop("computed_at")
    return answer


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stored_facts_give_the_full_computations_figures(seed, monkeypatch):
    rng = random.Random(seed)
    queue, people = _random_queue(rng)
    made = _judge_some(rng, queue, people, rounds=40)
    assert made > 10
    added = judgment_facts_fold(queue=queue, now=timezone.now() + LATER)
    assert added == made == JudgmentFact.objects.filter(queue=queue).count()
    state = JudgmentFactsState.objects.get(queue=queue)
    assert state.folded_through == Judgment.objects.filter(assignment__item__queue=queue).latest("pk").pk
    _assert_same_facts(queue)
    # A gold item among the judged ones (gold is read from the items, never stored).
    item = QueueItem.objects.filter(queue=queue, judged__gt=0).order_by("pk").first()
    QueueItem.objects.filter(pk=item.pk).update(is_gold=True, gold_answer={"preference": rng.randint(-3, 3)})
    _assert_same_facts(queue)
    stats = _stats(queue)
    assert stats == _full_stats(queue, monkeypatch)
    assert stats["rates"]["judgments"] == made
    assert stats["agreement"]["criteria"][0]["percent_agreement"]["items"] > 0


def test_new_judgments_are_read_before_they_are_folded_and_folded_once(monkeypatch):
    rng = random.Random(7)
    queue, people = _random_queue(rng, items=20)
    first = _judge_some(rng, queue, people, rounds=20)
    judgment_facts_fold(queue=queue, now=timezone.now() + LATER)
    through = JudgmentFactsState.objects.get(queue=queue).folded_through
    more = _judge_some(rng, queue, people, rounds=20)
    assert more > 0
    assert JudgmentFact.objects.filter(queue=queue).count() == first  # not folded yet ...
    _assert_same_facts(queue)  # ... yet read, from the judgments after ``folded_through``
    assert _stats(queue) == _full_stats(queue, monkeypatch)
    # A fold right now adds them but keeps its watermark below judgments that may not be
    # committed everywhere yet (made under SETTLE_SECONDS ago) ...
    assert judgment_facts_fold(queue=queue) == more
    assert JudgmentFactsState.objects.get(queue=queue).folded_through == through
    # Read now, those folded above the watermark come from the chunks, not twice (and not by
    # falling back to the full computation).
    calls = []
    real = stats_facts.judgment_facts

    def spy(**kwargs):
        calls.append(kwargs.get("unfolded_after"))
        return real(**kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(stats_facts, "judgment_facts", spy)
        stored = stats_facts.stored_judgment_facts(queue=queue, criteria=_criteria(queue))
    assert calls == [through]  # only the (empty) tail was computed from the judgments
    assert len(stored.ids) == first + more
    _assert_same_facts(queue)
    # ... so the next one looks at them again, and adds none twice.
    assert judgment_facts_fold(queue=queue, now=timezone.now() + LATER) == 0
    assert JudgmentFactsState.objects.get(queue=queue).folded_through > through
    assert JudgmentFact.objects.filter(queue=queue).count() == first + more
    _assert_same_facts(queue)


def test_an_undo_removes_the_fact_and_the_new_answer_is_counted(monkeypatch):
    rng = random.Random(11)
    queue, people = _random_queue(rng, raters=3, items=6, overlap=2)
    _judge_some(rng, queue, people, rounds=8)
    judgment_facts_fold(queue=queue, now=timezone.now() + LATER)
    rater = Judgment.objects.filter(assignment__item__queue=queue).latest("pk").assignment.rater
    before = JudgmentFact.objects.filter(queue=queue).count()
    assignment, _previous = assignment_reopen_last(rater=rater, queue=queue)
    assert not JudgmentFact.objects.filter(judgment__assignment=assignment).exists()
    assert JudgmentFact.objects.filter(queue=queue).count() == before - 1
    _assert_same_facts(queue)
    assert _stats(queue) == _full_stats(queue, monkeypatch)
    # The changed answer, as a new judgment: read at once, folded by the next fold.
    judgment_submit(assignment=assignment, preference=3, criteria={"honest": 3, "quality": {"A": 1, "B": 7}})
    _assert_same_facts(queue)
    assert _stats(queue) == _full_stats(queue, monkeypatch)
    assert judgment_facts_fold(queue=queue, now=timezone.now() + LATER) == 1
    _assert_same_facts(queue)
    # The fold packed the facts again: the chunks hold exactly the facts that exist.
    packed = sum(JudgmentFactChunk.objects.filter(queue=queue).values_list("rows", flat=True))
    assert packed == JudgmentFact.objects.filter(queue=queue).count() == before


def test_many_chunks_are_packed_into_one(monkeypatch):
    from labeling.services import stats_facts as folding

    monkeypatch.setattr(folding, "MAX_CHUNKS", 2)
    rng = random.Random(23)
    queue, people = _random_queue(rng, items=20)
    for _ in range(3):
        assert _judge_some(rng, queue, people, rounds=6) > 0
        judgment_facts_fold(queue=queue, now=timezone.now() + LATER)
    chunks = list(JudgmentFactChunk.objects.filter(queue=queue).values_list("rows", flat=True))
    assert len(chunks) == 1 and chunks[0] == JudgmentFact.objects.filter(queue=queue).count()
    _assert_same_facts(queue)


def test_a_missing_fact_below_the_watermark_is_noticed_and_folded_again(monkeypatch):
    """A submit whose transaction commits after a fold passed its id: its fact is missing below
    ``folded_through``. The read notices (fewer facts than judged) and computes in full; the
    next fold finds it."""
    rng = random.Random(5)
    queue, people = _random_queue(rng)
    _judge_some(rng, queue, people, rounds=25)
    judgment_facts_fold(queue=queue, now=timezone.now() + LATER)
    lost = JudgmentFact.objects.filter(queue=queue).order_by("pk").first()
    JudgmentFact.objects.filter(pk=lost.pk).delete()
    _assert_same_facts(queue)
    assert _stats(queue) == _full_stats(queue, monkeypatch)
    assert judgment_facts_fold(queue=queue, now=timezone.now() + LATER) == 1
    assert JudgmentFact.objects.filter(pk=lost.pk).exists()
    _assert_same_facts(queue)


def test_another_rubric_folds_the_queue_again(monkeypatch):
    rng = random.Random(3)
    queue, people = _random_queue(rng)
    _judge_some(rng, queue, people, rounds=20)
    judgment_facts_fold(queue=queue, now=timezone.now() + LATER)
    rubric = RubricFactory()
    CriterionFactory(rubric=rubric, key="honest", kind=Criterion.Kind.PREFERENCE, question="Honest?")
    queue.rubric = rubric
    queue.save(update_fields=["rubric"])
    _assert_same_facts(queue)  # the stored answers are for other criteria: computed in full
    judgment_facts_fold(queue=queue, now=timezone.now() + LATER)
    assert JudgmentFactsState.objects.get(queue=queue).answer_keys == ["honest"]
    _assert_same_facts(queue)
    assert _stats(queue) == _full_stats(queue, monkeypatch)


def test_a_queue_never_folded_is_computed_in_full(monkeypatch):
    rng = random.Random(9)
    queue, people = _random_queue(rng)
    _judge_some(rng, queue, people, rounds=15)
    assert not JudgmentFactsState.objects.filter(queue=queue).exists()
    _assert_same_facts(queue)
    assert _stats(queue) == _full_stats(queue, monkeypatch)


def test_the_beat_task_folds_every_queue_with_new_judgments():
    rng = random.Random(13)
    one, people_one = _random_queue(rng, items=5)
    two, people_two = _random_queue(rng, items=5)
    made = _judge_some(rng, one, people_one, rounds=10) + _judge_some(rng, two, people_two, rounds=10)
    assert tasks.judgment_facts_fold_task() == made
    assert judgment_facts_fold_all(now=timezone.now() + LATER) == 0
    entry = settings.CELERY_BEAT_SCHEDULE["fold-judgment-facts"]
    assert entry["task"] == "labeling.tasks.judgment_facts_fold_task"


@pytest.mark.parametrize("seed", [21, 22])
def test_the_pairwise_review_list_aggregated_in_the_database_matches_row_by_row(seed):
    """``queue_review_items`` on a pairwise queue counts directions and flags per item in the
    database; the row-by-row reading (what a ranking queue uses) gives the same list, for several
    thresholds, with a gold item, a reviewed item and a reviewer who judged."""
    from labeling.models import Review
    from labeling.selectors import reviews

    rng = random.Random(seed)
    queue, people = _random_queue(rng, raters=4, items=12, overlap=3)
    _judge_some(rng, queue, people, rounds=36)
    judged = list(QueueItem.objects.filter(queue=queue, judged__gt=0).order_by("pk"))
    QueueItem.objects.filter(pk=judged[0].pk).update(is_gold=True, gold_answer={"preference": 1})
    Review.objects.create(item=judged[1], reviewer=RaterFactory(), preference=1)
    for threshold in (None, 0.0, 0.3, 0.5):
        queue.review_disagreement = threshold
        for reviewer, pending in ((None, True), (people[0], False)):
            fast = reviews.queue_review_items(queue=queue, reviewer=reviewer, pending=pending)
            slow = reviews._review_list(
                queue, reviews._items_row_by_row(queue), reviewer=reviewer, pending=pending
            )
            assert fast == slow, threshold
    assert fast and any("flagged" in entry["reasons"] for entry in fast)


def test_unique_inverse_is_numpys_unique_without_the_sort():
    from labeling.selectors.agreement import _unique_inverse

    rng = np.random.default_rng(4)
    for values in (
        rng.integers(1000, 1200, size=5000),  # dense ids: counted over their range
        rng.integers(0, 2**40, size=300),  # sparse: numpy's own unique
        np.array([7]),
        np.zeros(0, dtype=np.int64),
    ):
        count, inverse = _unique_inverse(values)
        distinct, expected = np.unique(values, return_inverse=True)
        assert count == len(distinct)
        np.testing.assert_array_equal(inverse, expected)


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_stored_path_reads_one_snapshot_and_the_same_figures(monkeypatch):
    """Outside any transaction (a request without ATOMIC_REQUESTS), PostgreSQL reads the facts,
    the new judgments and the counters in one REPEATABLE READ snapshot; the figures are the same."""
    from django.db import connection

    rng = random.Random(17)
    queue, people = _random_queue(rng)
    _judge_some(rng, queue, people, rounds=20)
    judgment_facts_fold(queue=queue, now=timezone.now() + LATER)
    _judge_some(rng, queue, people, rounds=10)
    assert not connection.in_atomic_block
    _assert_same_facts(queue)
    assert _stats(queue) == _full_stats(queue, monkeypatch)


@pytest.mark.postgres
def test_behind_a_transaction_pooler_the_facts_are_read_as_text(monkeypatch):
    """Client-side binding (DATABASE_TRANSACTION_POOLER=1) cannot fetch binary results: the
    packed chunks then come as hex text, the same numbers."""
    from types import SimpleNamespace

    import psycopg
    from django.db import connection

    rng = random.Random(29)
    queue, people = _random_queue(rng)
    _judge_some(rng, queue, people, rounds=15)
    judgment_facts_fold(queue=queue, now=timezone.now() + LATER)
    binary = stats_facts.stored_judgment_facts(queue=queue, criteria=_criteria(queue))
    connection.ensure_connection()
    client = SimpleNamespace(cursor=psycopg.ClientCursor(connection.connection))
    real = stats_facts._binary_rows
    monkeypatch.setattr(stats_facts, "_binary_rows", lambda cursor, sql, params: real(client, sql, params))
    text = stats_facts.stored_judgment_facts(queue=queue, criteria=_criteria(queue))
    np.testing.assert_array_equal(text.ids, binary.ids)
    np.testing.assert_array_equal(text.active, binary.active)
    _assert_same_facts(queue)
