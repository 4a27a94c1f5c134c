"""Folding judgments into the queue statistics' stored facts (``JudgmentFact``): the writer of
those rows and of each queue's ``JudgmentFactsState``.

A fold adds the facts of the queue's judgments with an id above its ``folded_through``, in
batches of ids, each one ``INSERT ... SELECT`` computed by the database with the very expressions
the statistics use (``selectors.stats_facts``), so a stored fact equals what a full computation
would give. Then ``folded_through`` moves up, but never past a judgment that may still be
uncommitted: only to the newest judgment made ``SETTLE_SECONDS`` ago or earlier, so a submit
whose id was taken before the fold and that commits after it is found by the next fold (the
``NOT EXISTS`` guard keeps a judgment from being folded twice); and when the queue's facts are
fewer than its items' ``judged`` counters say, the whole queue is searched for the missing. Beat's ``fold-judgment-facts``
runs it for every queue; readers add what is newer themselves, so the figures never wait for it.

Judgments are never edited; an undo deletes the judgment, and its fact goes with it (CASCADE).
Whether an item is gold is read from the items when the facts are read. A queue whose measured
criteria changed (another rubric) has its facts dropped and folded again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import BooleanField, Case, Count, Max, Q, Sum, TextField, Value, When
from django.db.models.functions import Cast, Coalesce, Concat
from django.utils import timezone

from labeling.models import Judgment, JudgmentFact, JudgmentFactChunk, JudgmentFactsState, Queue
from labeling.selectors.queue_stats import queue_stats_criteria
from labeling.selectors.stats_facts import (
    fact_answer_keys,
    facts_queryset,
    flagged,
    pack_facts,
    stored_fact_columns,
)

#: Judgment ids per ``INSERT ... SELECT`` (one statement each, in one transaction per fold).
FOLD_BATCH = 200_000
#: A judgment made longer ago than this is taken to be committed (a submit's transaction lasts
#: well under a second); ``folded_through`` never passes a younger one.
SETTLE_SECONDS = 60.0

#: More chunks than this are packed into one by the next fold.
MAX_CHUNKS = 32

COLUMNS = ["judgment_id", "queue_id", "item_id", "rater_id", "active", "preference", "swapped"]
COLUMNS += ["created", "both_bad", "answers", "chunk"]


def _insert_sql(
    queue: Queue, criteria: list[tuple[str, str]], low: int, high: int | None, chunk: int
) -> tuple[str, list]:
    """``INSERT INTO labeling_judgmentfact ... SELECT`` of the queue's judgments with an id in
    (low, high] (no upper end: None) that have no fact yet, as fold ``chunk``'s."""
    queryset, keys = facts_queryset(queue, criteria)
    queryset = queryset.filter(pk__gt=low, fact__isnull=True)
    if high is not None:
        queryset = queryset.filter(pk__lte=high)
    pieces: list = []
    for i in range(len(keys)):
        pieces += [Value(" ")] if i else []
        pieces.append(Coalesce(Cast(f"answer_{i}", TextField()), Value("nan"), output_field=TextField()))
    answers = (
        Value("", output_field=TextField())
        if not pieces
        else pieces[0]
        if len(pieces) == 1
        else Concat(*pieces, output_field=TextField())
    )
    queryset = queryset.annotate(
        fact_queue=Value(queue.pk),
        fact_both_bad=Case(
            When(flagged("both_bad"), then=Value(True)), default=Value(False), output_field=BooleanField()
        ),
        fact_answers=answers,
        fact_chunk=Value(chunk),
    )
    fields = ["pk", "fact_queue", "assignment__item_id", "assignment__rater_id", "active_seconds"]
    fields += ["preference", "swapped", "created", "fact_both_bad", "fact_answers", "fact_chunk"]
    sql, params = queryset.values_list(*fields).query.sql_with_params()
    table = JudgmentFact._meta.db_table
    return f"INSERT INTO {table} ({', '.join(COLUMNS)}) {sql}", list(params)


def _settled_through(now: datetime) -> int:
    """The newest judgment id (any queue) made ``SETTLE_SECONDS`` ago or earlier; 0 when none."""
    since = now - timedelta(seconds=SETTLE_SECONDS)
    found = (
        Judgment.objects.filter(created_at__lte=since).order_by("-pk").values_list("pk", flat=True).first()
    )
    return found or 0


def judgment_facts_fold(*, queue: Queue, now: datetime | None = None, batch: int = FOLD_BATCH) -> int:
    """Fold the queue's new judgments into its facts; returns how many facts were added.
    Concurrent folds of one queue run one after the other (its state row is locked)."""
    now = now or timezone.now()
    criteria = queue_stats_criteria(queue)
    keys = fact_answer_keys(criteria)
    added = 0
    with transaction.atomic():
        JudgmentFactsState.objects.get_or_create(queue=queue, defaults={"answer_keys": keys})
        state = JudgmentFactsState.objects.select_for_update().get(queue=queue)
        if state.answer_keys != keys:
            JudgmentFact.objects.filter(queue=queue).delete()
            JudgmentFactChunk.objects.filter(queue=queue).delete()
            state.folded_through, state.answer_keys = 0, keys
        top = Judgment.objects.aggregate(n=Max("pk"))["n"] or 0
        settled = _settled_through(now)
        low, chunk = state.folded_through, state.chunks + 1
        with connection.cursor() as cursor:
            while low < top:
                high = min(low + batch, top)
                cursor.execute(*_insert_sql(queue, criteria, low, high, chunk))
                added += max(cursor.rowcount, 0)
                low = high
            # A judgment committed after an earlier fold had passed its id (or facts lost
            # otherwise): the counts differ, and the whole queue is searched for the missing.
            judged = queue.items.aggregate(n=Sum("judged"))["n"] or 0
            if JudgmentFact.objects.filter(queue=queue).count() != judged:
                cursor.execute(*_insert_sql(queue, criteria, 0, None, chunk))
                added += max(cursor.rowcount, 0)
        if added:
            columns = stored_fact_columns(queue.pk, len(keys), chunk=chunk)
            JudgmentFactChunk.objects.create(
                queue=queue, number=chunk, rows=len(columns[0]), data=pack_facts(columns)
            )
            state.chunks = chunk
        _chunks_repack(queue, state, len(keys))
        state.folded_through = max(state.folded_through, min(top, settled))
        state.save(update_fields=["folded_through", "chunks", "answer_keys", "updated_at"])
    return added


def _chunks_repack(queue: Queue, state: JudgmentFactsState, answers: int) -> None:
    """When the chunks hold rows whose facts are gone (undos since), or have grown many (a fold a
    minute on a busy queue), pack the queue's facts into one new chunk instead, so readers need
    not filter them nor read many small values."""
    chunks = JudgmentFactChunk.objects.filter(queue=queue).aggregate(n=Count("id"), rows=Sum("rows"))
    if (
        chunks["n"] <= MAX_CHUNKS
        and (chunks["rows"] or 0) == JudgmentFact.objects.filter(queue=queue).count()
    ):
        return
    JudgmentFactChunk.objects.filter(queue=queue).delete()
    columns = stored_fact_columns(queue.pk, answers)
    state.chunks += 1
    JudgmentFactChunk.objects.create(
        queue=queue, number=state.chunks, rows=len(columns[0]), data=pack_facts(columns)
    )


def judgment_facts_fold_all(*, now: datetime | None = None) -> int:
    """Fold every queue that has judgments newer than its facts; returns the facts added."""
    now = now or timezone.now()
    added = 0
    through = dict(JudgmentFactsState.objects.values_list("queue_id", "folded_through"))
    for queue in Queue.objects.select_related("rubric").order_by("pk"):
        newer = Judgment.objects.filter(Q(assignment__item__queue=queue), pk__gt=through.get(queue.pk, 0))
        if newer.exists():
            added += judgment_facts_fold(queue=queue, now=now)
    return added
