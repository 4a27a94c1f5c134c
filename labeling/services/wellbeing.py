"""Rater wellbeing: the refusals both claims share (disturbing queues need an opt-in; a queue's
daily cap), and the rater's own opt-in switch.

Both claims (``labeling.services.claims`` for ordinary items, ``labeling.services.redteam_reviews``
for attacks) call ``wellbeing_disturbing_check`` and, after locking the rater's row,
``wellbeing_daily_cap_check``, so the same rule holds through the API and the pages.

A rater at a queue's daily cap is refused with **429** (Too Many Requests, with ``Retry-After``
in seconds to midnight UTC), not 403: the rater may work there, just not more today. The cap
counts items handed out since midnight UTC (``labeling.selectors.wellbeing.rater_items_today``).
"""

from __future__ import annotations

from datetime import datetime

from django.urls import reverse

from labeling.audit import audit_record
from labeling.errors import ApplicationError
from labeling.models import Queue, User
from labeling.selectors.wellbeing import daily_cap_message, rater_items_today, seconds_to_reset


class DailyCapReached(ApplicationError):
    """The rater got the queue's ``daily_cap`` items today (429); ``retry_after``: seconds to
    midnight UTC, when the cap resets."""

    status_code = 429

    def __init__(self, *, queue: Queue, now: datetime) -> None:
        super().__init__(daily_cap_message(queue=queue, now=now))
        self.retry_after = seconds_to_reset(now)


def disturbing_refusal_message(queue: Queue) -> str:
    return (
        f"'{queue.name}' holds disturbing material (red-team work or reviews): it is only for raters "
        f"who opted in. You can opt in (or out) on your profile, {reverse('rate-profile')}."
    )


def wellbeing_disturbing_check(*, opted_in: bool, queue: Queue) -> None:
    """403 unless the queue is not disturbing or the rater opted in."""
    if queue.disturbing and not opted_in:
        raise ApplicationError(disturbing_refusal_message(queue), status_code=403)


def wellbeing_daily_cap_check(*, rater_id: int, queue: Queue, now: datetime) -> None:
    """``DailyCapReached`` when the rater already got ``queue.daily_cap`` items of it today (UTC).

    Call it with the rater's row locked (as both claims do): two claims of one rater then count
    one after the other, so the cap holds under concurrency."""
    if (
        queue.daily_cap is not None
        and rater_items_today(rater=rater_id, queue=queue, now=now) >= queue.daily_cap
    ):
        raise DailyCapReached(queue=queue, now=now)


def rater_set_disturbing_opt_in(*, rater: User, opt_in: bool) -> User:
    """Opt the rater in to (or out of) disturbing queues; the change is audited. Opting out takes
    effect at the next claim: an item already held stays theirs until it expires or is done."""
    if not isinstance(opt_in, bool):
        raise ApplicationError("disturbing_opt_in: must be true or false", field="disturbing_opt_in")
    if rater.disturbing_opt_in != opt_in:
        audit_record(
            "user.disturbing_opt_in",
            target=rater,
            actor=rater,
            changes={"disturbing_opt_in": [rater.disturbing_opt_in, opt_in]},
        )
        rater.disturbing_opt_in = opt_in
        rater.save(update_fields=["disturbing_opt_in"])
    return rater
