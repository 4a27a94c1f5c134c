"""Writes the rater workbench makes beyond claim/submit/skip: undo, rewrites, content opt-outs.

Lock order as everywhere (see the package docstring): rater row -> assignment row -> queue item row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from comparisons.models import Candidate, ComparisonCandidate
from labeling.errors import ApplicationError, Conflict
from labeling.models import Assignment, ContentCategory, Judgment, Queue, QueueItem, User
from labeling.selectors import content_warnings_for_assignment
from labeling.services.assignments import assignment_claim_next
from labeling.services.judgments import judgment_submit
from model_runner.models import Generator

#: The generator that human-written responses ("write a better response") are stored under.
HUMAN_GENERATOR_NAME = "human-rewrite"
#: How many opted-out items one claim passes over before giving up (and showing "nothing left").
MAX_OPT_OUT_PASSES = 50

# ------------------------------------------------------------------------------ rewrites


def _human_generator() -> Generator:
    generator, _ = Generator.objects.get_or_create(
        name=HUMAN_GENERATOR_NAME, defaults={"backend": Generator.Backend.HUMAN}
    )
    return generator


def candidate_create_from_rewrite(*, judgment: Judgment) -> Candidate | None:
    """Store a judgment's "write a better response" text as a human-written candidate.

    The candidate belongs to the item's prompt, is authored by the rater, comes from the ``human``
    generator and uses the judgment's id as its sample index, so one judgment stores at most one
    (a replay finds the existing row). It joins no comparison here: the rater never sees it in
    their blind view; pairing it against model responses is a later queue's decision.
    """
    text = (judgment.rewrite or "").strip()
    if not text:
        return None
    assignment = judgment.assignment
    candidate, _ = Candidate.objects.get_or_create(
        prompt_id=assignment.item.comparison.prompt_id,
        generator=_human_generator(),
        sample_index=judgment.pk,
        defaults={
            "text": text,
            "author_id": assignment.rater_id,
            "finish_reason": Candidate.FinishReason.HUMAN,
        },
    )
    return candidate


def judgment_submit_with_rewrite(*, assignment: Assignment, **answers: Any) -> tuple[Judgment, bool]:
    """``judgment_submit``, plus the rewrite stored as a human candidate, in one transaction."""
    if not (answers.get("rewrite") or "").strip():
        return judgment_submit(assignment=assignment, **answers)
    with transaction.atomic():
        judgment, created = judgment_submit(assignment=assignment, **answers)
        if created:
            candidate_create_from_rewrite(judgment=judgment)
    return judgment, created


# ---------------------------------------------------------------------------------- undo


def judgment_undo_last(*, rater: User, queue: Queue, now: datetime | None = None) -> tuple[Assignment, dict]:
    """Reopen the rater's latest judgment in ``queue``: its assignment is leased to them again.

    Allowed while the original lease would still be valid (``expires_at`` in the future) and the
    item is still open (not retired, within the overlap: the slot the judgment held becomes the
    lease's slot again, so ``claimed`` is unchanged and ``judged`` drops by one). A human rewrite
    stored from the judgment is removed with it unless a comparison already uses it.

    Locks the rater row, then the assignment row, then the item row: an undo racing a claim or a
    double-clicked undo by the same rater runs one after the other; the second finds nothing
    newer to undo or reopens the previous one only if it too qualifies.
    Returns (the reopened assignment, the removed answers to prefill the form with).
    """
    now = now or timezone.now()
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=rater.pk).values_list("pk", flat=True).first()
        last_id = (
            Assignment.objects.filter(rater=rater, item__queue=queue, status=Assignment.Status.SUBMITTED)
            .order_by("-updated_at", "-id")
            .values_list("pk", flat=True)
            .first()
        )
        if last_id is None:
            raise Conflict("There is no judgment of yours in this queue to undo.")
        locked = Assignment.objects.select_for_update().get(pk=last_id)
        item = QueueItem.objects.select_for_update().get(pk=locked.item_id)
        if locked.status != Assignment.Status.SUBMITTED:
            raise Conflict("That judgment was already reopened.")
        if locked.expires_at <= now:
            raise Conflict("Too late to undo: the lease on your last item has run out.")
        if item.retired or item.claimed > queue.overlap:
            raise Conflict("Too late to undo: your last item is closed.")
        judgment = Judgment.objects.get(assignment=locked)
        previous = {
            "preference": judgment.preference,
            "ranking": judgment.ranking,
            "criteria": judgment.criteria,
            "flags": judgment.flags,
            "rationale": judgment.rationale,
            "rewrite": judgment.rewrite,
            "active_seconds": judgment.active_seconds,
        }
        rewrite = Candidate.objects.filter(
            generator__name=HUMAN_GENERATOR_NAME, sample_index=judgment.pk, author_id=rater.pk
        ).first()
        if rewrite is not None and not ComparisonCandidate.objects.filter(candidate=rewrite).exists():
            rewrite.delete()
        judgment.delete()
        QueueItem.objects.filter(pk=item.pk).update(judged=F("judged") - 1)
        locked.status = Assignment.Status.LEASED
        locked.save(update_fields=["status", "updated_at"])
    locked.item = item
    item.queue = queue
    return locked, previous


# ------------------------------------------------------------------- content opt-outs


def rater_set_content_opt_outs(*, rater: User, categories: list[str]) -> User:
    """Save the content categories a rater does not want to see. Unknown names are refused."""
    unknown = sorted(set(categories) - set(ContentCategory.values))
    if unknown:
        raise ApplicationError(f"content_opt_outs: unknown category {unknown[0]!r}", field="content_opt_outs")
    rater.content_opt_outs = [c for c in ContentCategory.values if c in set(categories)]
    rater.save(update_fields=["content_opt_outs"])
    return rater


def queue_opted_out_category(*, rater: User, queue: Queue) -> str | None:
    """The queue-wide warning category this rater opted out of, if any (then they are not sent there)."""
    cat = queue.content_warning_category or (ContentCategory.OTHER.value if queue.content_warning else "")
    return cat if cat and cat in (rater.content_opt_outs or []) else None


def assignment_pass_on_opted_out(*, assignment: Assignment, categories: list[str]) -> Assignment:
    """Give back an item carrying content the rater opted out of, without showing it to them.

    Like a skip with policy ``others`` whatever the queue's policy (an opt-out never retires an
    item for everyone, nor brings it back to this rater): the slot goes to other raters.
    """
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.status != Assignment.Status.LEASED:
            return locked
        QueueItem.objects.filter(pk=locked.item_id).update(claimed=F("claimed") - 1)
        locked.status = Assignment.Status.SKIPPED
        locked.requeue = False
        locked.skip_reason = ("content opt-out: " + ", ".join(categories))[:500]
        locked.save(update_fields=["status", "requeue", "skip_reason", "updated_at"])
    return locked


def assignment_claim_for_workbench(
    *, rater: User, queue: Queue, now: datetime | None = None
) -> tuple[Assignment | None, list[dict[str, Any]]]:
    """Claim the next item as ``assignment_claim_next`` does, passing over opted-out content.

    Returns (assignment or None, its content warnings). Items whose warnings the rater opted out
    of are passed on to others (``assignment_pass_on_opted_out``) and the next one is claimed.
    """
    opt_outs = set(rater.content_opt_outs or [])
    for _ in range(MAX_OPT_OUT_PASSES):
        assignment = assignment_claim_next(rater=rater, queue=queue, now=now)
        if assignment is None:
            return None, []
        warnings = content_warnings_for_assignment(assignment=assignment)
        hit = sorted(w["category"] for w in warnings if w["category"] in opt_outs)
        if not hit:
            return assignment, warnings
        assignment_pass_on_opted_out(assignment=assignment, categories=hit)
    return None, []
