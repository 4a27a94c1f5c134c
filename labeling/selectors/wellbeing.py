"""Reads for rater wellbeing: the UTC day a daily cap counts in, runs of items "in a row" (for a
queue's ``break_after``), and how much disturbing material each rater saw per day (counts only,
never content).

A **run** is the rater's items of one queue shown with gaps under ``PREFLAB_BREAK_GAP_MINUTES``
(default 10) between them, the newest one less than that before now: a longer pause is a break
and starts a new run. Items shown are the rater's assignments of the queue (by ``created_at``) or,
in a red-team review queue, their attack exposures (``shown_at``). A break is **due** when the
rater's current run holds a whole multiple of ``break_after`` items (N, 2N, ...): the page shows
the "take a break" interstitial before the next item, and the API sets ``take_break`` on it. A
rater who takes the next item anyway starts the count to the next break; one who pauses for the
gap starts a new run.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, F, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from labeling.models import Assignment, AttackExposure, Queue, SessionTemplate, Turn, User

#: How far back the run is looked for (a run longer than this is counted up to here).
RUN_LOOKBACK = 2000
#: How ``assignment_pass_on`` marks an item given back unseen (it is not counted as shown).
PASSED_ON_PREFIX = "content opt-out: "
#: Days the admin's exposure view covers.
EXPOSURE_DAYS = 14


def utc_day_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of ``now``'s day: daily caps count from here."""
    now = now or timezone.now()
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def daily_cap_message(*, queue: Queue, now: datetime | None = None) -> str:
    """The refusal a rater at the queue's daily cap reads, saying when it resets."""
    now = now or timezone.now()
    resets = utc_day_start(now) + timedelta(days=1)
    left = resets - now
    hours, minutes = divmod(max(0, int(left.total_seconds()) // 60), 60)
    return (
        f"You have reached today's limit of {queue.daily_cap} item(s) in '{queue.name}', set for "
        f"your wellbeing. It resets at midnight UTC ({resets:%Y-%m-%d %H:%M} UTC, in {hours} h {minutes} min)."
    )


def seconds_to_reset(now: datetime | None = None) -> int:
    """Whole seconds until the next midnight UTC (the ``Retry-After`` of a daily-cap refusal)."""
    now = now or timezone.now()
    return max(1, int((utc_day_start(now) + timedelta(days=1) - now).total_seconds()))


def rater_items_today(*, rater: User | int, queue: Queue, now: datetime | None = None) -> int:
    """Items of ``queue`` the rater got since midnight UTC: attack exposures in a red-team review
    queue, assignments created in any other queue."""
    since = utc_day_start(now)
    rater_id = rater if isinstance(rater, int) else rater.pk
    if queue.kind == Queue.Kind.REDTEAM:
        return AttackExposure.objects.filter(rater_id=rater_id, queue=queue, shown_at__gte=since).count()
    rows = Assignment.objects.filter(rater_id=rater_id, item__queue=queue, created_at__gte=since)
    # Items passed on unseen for a content opt-out (``assignment_pass_on``) were never shown.
    return rows.exclude(skip_reason__startswith=PASSED_ON_PREFIX).count()


def _shown_times(*, rater: User, queue: Queue) -> QuerySet[Any]:
    if queue.kind == Queue.Kind.REDTEAM:
        found = AttackExposure.objects.filter(rater=rater, queue=queue).order_by("-shown_at")
        return found.values_list("shown_at", flat=True)
    rows = Assignment.objects.filter(rater=rater, item__queue=queue).order_by("-created_at")
    return rows.values_list("created_at", flat=True)


def rater_run_length(*, rater: User, queue: Queue, now: datetime | None = None) -> int:
    """Items of ``queue`` in the rater's current run (see the module docstring); 0 after a break."""
    now = now or timezone.now()
    gap = timedelta(minutes=settings.PREFLAB_BREAK_GAP_MINUTES)
    run, later = 0, now
    for shown in _shown_times(rater=rater, queue=queue)[:RUN_LOOKBACK]:
        if later - shown >= gap:
            break
        run, later = run + 1, shown
    return run


def rater_break_due(*, rater: User, queue: Queue, now: datetime | None = None) -> bool:
    """Whether the rater should be offered a break before their next new item of ``queue``: its
    ``break_after`` is set and the current run holds a whole multiple of it (N, 2N, ...)."""
    if not queue.break_after:
        return False
    run = rater_run_length(rater=rater, queue=queue, now=now)
    return run > 0 and run % queue.break_after == 0


def wellbeing_exposure(*, days: int = EXPOSURE_DAYS, now: datetime | None = None) -> dict[str, Any]:
    """Per rater and UTC day of the last ``days`` days: how many disturbing items they saw, as
    counts only (``assignments`` in queues marked disturbing, red-team ``attack_exposures`` shown
    for review, and model ``redteam_turns`` of their red-team sessions), with each rater's opt-in.

    Assignments of red-team session queues are left out of ``assignments``: those turns are
    counted once, as ``redteam_turns``.
    """
    start_day = utc_day_start(now) - timedelta(days=days - 1)
    day_list: list[date] = [(start_day + timedelta(days=i)).date() for i in range(days)]
    redteam_queues = SessionTemplate.objects.filter(mode=SessionTemplate.Mode.REDTEAM).values("queue_id")
    kinds = ("assignments", "attack_exposures", "redteam_turns")
    counts: dict[int, dict[date, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(kinds, 0))
    )
    sources = (
        (
            "assignments",
            Assignment.objects.filter(item__queue__disturbing=True, created_at__gte=start_day)
            .exclude(item__queue_id__in=redteam_queues)
            .annotate(day=TruncDate("created_at", tzinfo=UTC), who=F("rater_id")),
        ),
        (
            "attack_exposures",
            AttackExposure.objects.filter(shown_at__gte=start_day).annotate(
                day=TruncDate("shown_at", tzinfo=UTC), who=F("rater_id")
            ),
        ),
        (
            "redteam_turns",
            Turn.objects.filter(
                session__queue_id__in=redteam_queues, role=Turn.Role.ASSISTANT, created_at__gte=start_day
            ).annotate(day=TruncDate("created_at", tzinfo=UTC), who=F("session__trainer_id")),
        ),
    )
    for kind, rows in sources:
        for rater_id, day, n in (
            rows.values("who", "day").annotate(n=Count("id")).values_list("who", "day", "n")
        ):
            counts[rater_id][day][kind] += n
    users = {u.pk: u for u in User.objects.filter(pk__in=list(counts)).order_by("username")}
    raters = []
    for user in sorted(users.values(), key=lambda u: u.username):
        per_day = counts[user.pk]
        series: list[dict[str, Any]] = []
        totals: list[int] = []
        for day in day_list:
            row = per_day.get(day, dict.fromkeys(kinds, 0))
            totals.append(sum(row.values()))
            series.append({"day": day.isoformat(), **row, "total": totals[-1]})
        raters.append(
            {
                "rater": user.username,
                "rater_id": user.pk,
                "opted_in": user.disturbing_opt_in,
                "days": series,
                "total": sum(totals),
                "peak": max(totals),
            }
        )
    return {"days": [d.isoformat() for d in day_list], "raters": raters}
