"""Adjudication: a reviewer records the final label of a contested item, once.

The page (``/review/``) and the API (``POST /api/v1/queue-items/{id}/review/``) fetch the item
through the same gatekeeper (``review_item_get_for_reviewer``: reviewers and admins only, never
an item they judged) and call ``review_submit``.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from labeling.audit import audit_record
from labeling.errors import ApplicationError, Conflict, column_check
from labeling.models import Queue, QueueItem, Review, User

MAX_NOTE = 20000


class ReviewExists(Conflict):
    """The item has a review already (409); ``review`` is the stored one."""

    def __init__(self, review: Review) -> None:
        super().__init__(
            f"This item was already reviewed by {review.reviewer.username} "
            f"on {review.created_at:%Y-%m-%d %H:%M} UTC; a review is final."
        )
        self.review = review


def _check_preference(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -3 <= value <= 3:
        raise ApplicationError(
            "preference: must be an integer from -3 (response 1 much better) to 3 (response 2 much better)",
            field="preference",
        )
    return value


def _check_ranking(value: Any, size: int) -> list[list[int]]:
    shape = (
        "ranking: must be a list of groups of response positions (0-based), best first, like [[0], [2, 1]]"
    )
    if not isinstance(value, list) or not value:
        raise ApplicationError(shape, field="ranking")
    for group in value:
        if (
            not isinstance(group, list)
            or not group
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in group)
        ):
            raise ApplicationError(shape, field="ranking")
    flat = [p for group in value for p in group]
    if sorted(flat) != list(range(size)):
        raise ApplicationError(
            f"ranking: must place each of the positions 0..{size - 1} exactly once", field="ranking"
        )
    return [sorted(group) for group in value]


def review_submit(
    *, item: QueueItem, reviewer: User, preference: Any = None, ranking: Any = None, note: Any = ""
) -> Review:
    """Record ``reviewer``'s final label for ``item``, in the comparison's stored candidate order:
    ``preference`` (-3..3, negative = position 0 better) on a pairwise queue, ``ranking`` (groups
    of positions 0..K-1, best first) on a ranking queue, with an optional ``note``.

    The caller fetched ``item`` through ``review_item_get_for_reviewer``. One review per item: a
    second (also a concurrent one) raises ``ReviewExists`` carrying the stored review, and writes
    nothing. The review and its audit event commit together.
    """
    if item.queue.kind == Queue.Kind.PAIRWISE:
        if preference is None:
            raise ApplicationError("preference: required for a pairwise item (-3..3)", field="preference")
        label: dict[str, Any] = {"preference": _check_preference(preference), "ranking": None}
    else:
        if ranking is None:
            raise ApplicationError("ranking: required for a ranking item", field="ranking")
        label = {"preference": None, "ranking": _check_ranking(ranking, item.comparison.size)}
    if not isinstance(note, str):
        raise ApplicationError("note: must be text", field="note")
    if len(note) > MAX_NOTE:
        raise ApplicationError(f"note: at most {MAX_NOTE} characters (this has {len(note)})", field="note")
    note = column_check(Review._meta.get_field("note"), note.strip(), name="note")
    stored = Review.objects.select_related("reviewer").filter(item=item).first()
    if stored is not None:
        raise ReviewExists(stored)
    review = Review(item=item, reviewer=reviewer, note=note, **label)
    try:
        with transaction.atomic():
            review.save()
            audit_record(
                "review.create",
                target=review,
                actor=reviewer,
                changes={"item": item.pk, "comparison": item.comparison_id, **label, "note": note},
            )
    except IntegrityError:
        raise ReviewExists(Review.objects.select_related("reviewer").get(item=item)) from None
    return review
