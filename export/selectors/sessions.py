"""Finished conversation sessions for the ``sft`` view, streamed as records with their kept branch.

:func:`export_session_queryset` applies the filters that apply to sessions: ``queues`` (the
conversation queues, that is the templates), ``modes`` (the templates' mode), ``since`` /
``until`` on the time the session was finished, and ``exclude_paused_raters`` on the trainer.
Only finished sessions, by id. :func:`export_session_records` reads them in chunks of
CHUNK_SIZE, with one query for the chunk's turns and one for their prompts: the query count grows
with chunks, never with rows. Turns of abandoned branches are never read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from django.db.models import Count, Q, QuerySet

from export.records import SessionRecord, TurnInfo
from export.selectors.judgments import _prompts, _rows_by_ids, export_judgment_queryset
from labeling.models import Queue, Session, Turn

# Sessions read per chunk (their turns and prompts are read once per chunk).
SESSION_CHUNK_SIZE = 500

#: The filters the ``sft`` view takes (the others are about judgments and comparisons).
SESSION_FILTERS = ("queues", "modes", "since", "until", "exclude_paused_raters")

_TURN_FIELDS = (
    "session_id",
    "id",
    "parent_id",
    "role",
    "status",
    "text",
    "prompt_id",
    "comparison_id",
    "chosen_id",
    "chosen__generator__name",
    "by_trainer",
    "assignment__judgment__id",
)


def export_session_queryset(*, filters: dict[str, Any]) -> QuerySet[Session]:
    """Finished sessions matching already-validated filters (``export.spec``), by id."""
    qs = Session.objects.filter(status=Session.Status.FINISHED)
    if filters.get("queues"):
        qs = qs.filter(queue_id__in=filters["queues"])
    if filters.get("modes"):
        qs = qs.filter(queue__template__mode__in=filters["modes"])
    if filters.get("since"):
        qs = qs.filter(finished_at__gte=filters["since"])
    if filters.get("until"):
        qs = qs.filter(finished_at__lt=filters["until"])
    if filters.get("exclude_paused_raters"):
        qs = qs.filter(trainer__is_active=True)
    return qs.order_by("id")


def export_session_count(*, filters: dict[str, Any]) -> int:
    return export_session_queryset(filters=filters).count()


def export_session_records(
    *, filters: dict[str, Any], on_chunk: Callable[[int], None] | None = None
) -> Iterator[SessionRecord]:
    """The filtered finished sessions, by id, each with the turns of its kept branch in order.

    ``on_chunk(n)`` is called after each chunk with the number of sessions read so far.
    """
    rows = (
        export_session_queryset(filters=filters)
        .values_list(
            "id",
            "queue_id",
            "queue__name",
            "queue__template__mode",
            "trainer_id",
            "finished_at",
        )
        .iterator(chunk_size=SESSION_CHUNK_SIZE)
    )
    done = 0
    while True:
        chunk = list(islice(rows, SESSION_CHUNK_SIZE))
        if not chunk:
            return
        yield from _chunk_records(chunk)
        done += len(chunk)
        if on_chunk is not None:
            on_chunk(done)


def _chunk_records(chunk: list[tuple[Any, ...]]) -> Iterator[SessionRecord]:
    turns = list(
        _rows_by_ids(
            Turn.objects.filter(abandoned=False).order_by("session_id", "position", "id"),
            {row[0] for row in chunk},
            list(_TURN_FIELDS),
        )
    )
    prompts = _prompts({t[6] for t in turns if t[6] is not None}, full=False)
    by_session: dict[int, list[TurnInfo]] = {}
    for sid, tid, parent, role, status, text, pid, cid, chosen, gen, by_trainer, jid in turns:
        by_session.setdefault(sid, []).append(
            TurnInfo(
                id=tid,
                parent_id=parent,
                role=role,
                status=status,
                text=text,
                prompt=prompts[pid] if pid is not None else None,
                comparison_id=cid,
                chosen_id=chosen,
                generator=gen,
                by_trainer=by_trainer,
                judgment_id=jid,
            )
        )
    for sid, queue_id, queue, mode, trainer_id, finished_at in chunk:
        yield SessionRecord(
            id=sid,
            queue_id=queue_id,
            queue=queue,
            mode=mode or "",
            trainer_user_id=trainer_id,
            finished_at=finished_at,
            turns=by_session.get(sid, []),
        )


def export_conversation_counts(*, filters: dict[str, Any]) -> dict[str, int]:
    """Of the judgments an export reads, how many ranked a conversation turn, and how many of those
    a turn on a branch its trainer left (one query, for the dataset card)."""
    counts = (
        export_judgment_queryset(filters=filters)
        .order_by()
        .aggregate(
            judgments=Count("id", filter=Q(assignment__item__queue__kind=Queue.Kind.CONVERSATION)),
            abandoned=Count("id", filter=Q(assignment__turn__abandoned=True)),
        )
    )
    return {"judgments": counts["judgments"] or 0, "abandoned_turns": counts["abandoned"] or 0}
