"""Recording judgments."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from labeling import rows
from labeling.errors import ApplicationError, Conflict
from labeling.models import Assignment, Criterion, Judgment, Queue, QueueItem, Rubric
from labeling.selectors import LABELS, rubric_criteria
from labeling.services.adaptive import queue_reprioritize

# ----------------------------------------------------------------------------- judgments


def _validate_preference(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -3 <= value <= 3:
        raise ApplicationError(
            f"{field}: must be an integer from -3 (A much better) to 3 (B much better)", field=field
        )
    return value


def _validate_ranking(value: Any, labels: list[str]) -> list[list[str]]:
    if not isinstance(value, list) or not all(isinstance(g, list) and g for g in value):
        raise ApplicationError(
            "ranking: must be a list of non-empty groups of labels, best first", field="ranking"
        )
    flat = [label for group in value for label in group]
    if sorted(flat) != sorted(labels) or len(set(flat)) != len(flat):
        raise ApplicationError(
            f"ranking: must place each of {', '.join(labels)} exactly once", field="ranking"
        )
    return value


def _validate_criteria(rubric: Rubric, answers: Any, labels: list[str]) -> dict[str, Any]:
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        raise ApplicationError("criteria: must be an object keyed by criterion", field="criteria")
    criteria = {c.key: c for c in rubric_criteria(rubric)}
    for key in answers:
        if key not in criteria:
            raise ApplicationError(f"criteria.{key}: not in rubric {rubric}", field=f"criteria.{key}")
    clean: dict[str, Any] = {}
    for key, criterion in criteria.items():
        field = f"criteria.{key}"
        value = answers.get(key)
        if value is None or value == "" or value == {}:
            if criterion.required:
                raise ApplicationError(f"{field}: required ({criterion.question})", field=field)
            continue
        if criterion.kind == Criterion.Kind.PREFERENCE:
            clean[key] = _validate_preference(value, field)
        elif criterion.kind == Criterion.Kind.LIKERT:
            if not isinstance(value, dict) or set(value) - set(labels):
                raise ApplicationError(f"{field}: must map response labels to 1..7", field=field)
            for label, score in value.items():
                if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 7:
                    raise ApplicationError(
                        f"{field}.{label}: must be an integer 1..7", field=f"{field}.{label}"
                    )
            clean[key] = value
        elif criterion.kind == Criterion.Kind.FLAG:
            if not isinstance(value, bool):
                raise ApplicationError(f"{field}: must be true or false", field=field)
            clean[key] = value
        else:
            if not isinstance(value, str):
                raise ApplicationError(f"{field}: must be text", field=field)
            clean[key] = value[:10000]
    return clean


def judgment_submit(
    *,
    assignment: Assignment,
    preference: Any = None,
    ranking: Any = None,
    criteria: Any = None,
    flags: Any = None,
    rationale: str = "",
    rewrite: str = "",
    active_seconds: float | None = None,
    now: datetime | None = None,
) -> tuple[Judgment, bool]:
    """Record the rater's judgment. Returns (judgment, created).

    Idempotent: a double click, retry or replay returns the stored judgment with created=False.
    A lease that ran out is still accepted while the item has room (its slot is taken again);
    otherwise it is refused with a Conflict and nothing is written.
    """
    now = now or timezone.now()
    queue = assignment.item.queue
    labels = list(LABELS[: len(assignment.shown_order)])
    if assignment.status == Assignment.Status.SUBMITTED:
        # A replay: answer with what is stored, whatever this request carries.
        existing = Judgment.objects.filter(assignment=assignment).first()
        if existing is not None:
            return existing, False
    if queue.kind == Queue.Kind.PAIRWISE:
        if preference is None:
            raise ApplicationError("preference: required for a pairwise item (-3..3)", field="preference")
        preference = _validate_preference(preference, "preference")
        ranking = None
    else:
        if ranking is None:
            raise ApplicationError("ranking: required for a ranking item", field="ranking")
        ranking = _validate_ranking(ranking, labels)
        preference = None
    clean_criteria = _validate_criteria(queue.rubric, criteria, labels)
    if flags is None:
        flags = []
    if not isinstance(flags, list) or not all(isinstance(f, str) and f for f in flags):
        raise ApplicationError("flags: must be a list of flag names", field="flags")
    if active_seconds is not None and (not isinstance(active_seconds, int | float) or active_seconds < 0):
        raise ApplicationError("active_seconds: must be a non-negative number", field="active_seconds")

    judgment = Judgment(
        assignment=assignment,
        rubric=queue.rubric,
        preference=preference,
        ranking=ranking,
        criteria=clean_criteria,
        flags=sorted(set(flags)),
        rationale=(rationale or "")[:20000],
        rewrite=(rewrite or "")[:50000],
        active_seconds=active_seconds,
    )
    try:
        with transaction.atomic():
            # The usual case, a live lease: the conditional update of the assignment takes its
            # row lock and moves the status, so a concurrent double click or expiry waits for us
            # and then finds the lease no longer leased.
            if connection.vendor == "postgresql":
                recorded = _record_on_live_lease(judgment=judgment, now=now)
            else:
                recorded = bool(
                    Assignment.objects.filter(pk=assignment.pk, status=Assignment.Status.LEASED).update(
                        status=Assignment.Status.SUBMITTED, updated_at=now
                    )
                )
                if recorded:
                    _record(judgment)
            if not recorded:
                locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
                if locked.status == Assignment.Status.SUBMITTED:
                    # A concurrent double click got here first.
                    return Judgment.objects.get(assignment=locked), False
                if locked.status == Assignment.Status.SKIPPED:
                    raise Conflict("You skipped this item; it can no longer be judged.")
                # EXPIRED: the lease was released; take a slot again if one is free.
                retaken = QueueItem.objects.filter(pk=locked.item_id, claimed__lt=queue.overlap).update(
                    claimed=F("claimed") + 1
                )
                if not retaken:
                    raise Conflict(
                        "Your lease on this item expired and it has since been judged by enough raters."
                    )
                Assignment.objects.filter(pk=assignment.pk).update(
                    status=Assignment.Status.SUBMITTED, updated_at=now
                )
                _record(judgment)
            assignment.status = Assignment.Status.SUBMITTED
            if not queue.rubric.frozen:
                Rubric.objects.filter(pk=queue.rubric_id).update(frozen=True)
            if queue.pairing == Queue.Pairing.ADAPTIVE:
                prompt_id = assignment.item.comparison.prompt_id
                transaction.on_commit(lambda: queue_reprioritize(queue=queue, prompt_ids=[prompt_id]))
    except IntegrityError:
        # A concurrent replay won the race on the one-to-one key: return what it stored.
        return Judgment.objects.get(assignment=assignment), False
    return judgment, True


def _record(judgment: Judgment) -> None:
    """Store the judgment and count it on its item (the assignment is already SUBMITTED)."""
    judgment.save(force_insert=True)
    QueueItem.objects.filter(pk=judgment.assignment.item_id).update(judged=F("judged") + 1)


# The judgment's assignment_id comes from the moved assignment row, not from a parameter.
_ASSIGNMENT_AT = [f.attname for f in rows.insert_fields(Judgment)].index("assignment_id")


@functools.cache
def _live_lease_sql(vendor: str) -> str:
    assignment, item, judgment = (rows.table(m) for m in (Assignment, QueueItem, Judgment))
    q = rows.quote
    columns, placeholders = rows.insert_columns(Judgment)
    placeholders[_ASSIGNMENT_AT] = f"moved.{q('id')}"
    return (
        f"WITH moved AS (UPDATE {assignment} SET {q('status')} = %s, {q('updated_at')} = %s"
        f" WHERE {q('id')} = %s AND {q('status')} = %s RETURNING {q('id')}, {q('item_id')}),"
        f" bumped AS (UPDATE {item} SET {q('judged')} = {q('judged')} + 1"
        f" WHERE {q('id')} IN (SELECT {q('item_id')} FROM moved))"
        f" INSERT INTO {judgment} ({', '.join(columns)}) SELECT {', '.join(placeholders)} FROM moved"
        f" RETURNING {q('id')}"
    )


def _record_on_live_lease(*, judgment: Judgment, now: datetime) -> bool:
    """PostgreSQL: if the assignment is still leased, mark it submitted, store the judgment and
    count it on its item, in one statement (one round trip instead of three). False, with nothing
    written, when the lease is not live (judged, skipped or expired): the caller sorts that out."""
    values = rows.insert_values(judgment)
    del values[_ASSIGNMENT_AT]
    params = [Assignment.Status.SUBMITTED, now, judgment.assignment_id, Assignment.Status.LEASED, *values]
    with connection.cursor() as cursor:
        cursor.execute(_live_lease_sql(connection.vendor), params)
        row = cursor.fetchone()
    if row is None:
        return False
    rows.mark_saved(judgment, row[0])
    return True
