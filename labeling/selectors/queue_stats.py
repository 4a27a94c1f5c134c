"""A queue's whole statistics answer (``GET /api/v1/queues/{id}/stats/`` and the dashboard), cached.

The answer is kept in Django's cache (``CACHES["default"]``) under the queue and a fingerprint
that changes whenever the figures could: the items' count, summed ``judged``, gold and retired
counts, the assignments' count and latest ``updated_at`` (every lease, submit, skip, expiry and
reopen sets it), the queue's overlap and rubric, and the current hour (the throughput chart is
the last 24 hours). Reading the fingerprint is two aggregate queries; an unchanged queue is
served from the cache, a changed one is computed again. ``queue_stats_refresh_task`` (Celery
beat) keeps the active queues' answers computed, so a dashboard rarely waits for them.
``computed_at`` says when the figures were computed.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from labeling.models import Assignment, Queue

#: How long a computed answer is kept at most (a changed queue gets a new key long before).
CACHE_SECONDS = 24 * 3600


def queue_stats_fingerprint(*, queue: Queue) -> str:
    """A short string that changes when the queue's judgments, skips, leases or items change."""
    items = queue.items.aggregate(
        n=Count("id"),
        judged=Sum("judged"),
        gold=Count("id", filter=Q(is_gold=True)),
        retired=Count("id", filter=Q(retired=True)),
    )
    assignments = Assignment.objects.filter(item__queue=queue).aggregate(
        n=Count("id"), last=Max("updated_at")
    )
    last = assignments["last"].timestamp() if assignments["last"] else 0
    hour = timezone.now().strftime("%Y%m%d%H")
    return (
        f"{items['n']}.{items['judged'] or 0}.{items['gold']}.{items['retired']}."
        f"{assignments['n']}.{last}.{queue.overlap}.{queue.rubric_id}.{hour}"
    )


def queue_stats_cache_key(*, queue: Queue, fingerprint: str) -> str:
    return f"queue-stats:{queue.pk}:{fingerprint}"


def queue_stats_criteria(queue: Queue) -> list[tuple[str, str]]:
    """The (key, kind) criteria whose answers the statistics read: those agreement measures, on
    a pairwise queue; none otherwise."""
    from labeling.selectors import agreement

    if queue.kind != Queue.Kind.PAIRWISE:
        return []
    return [(c.key, str(c.kind)) for c in agreement.measured_criteria(queue)]


def queue_stats_compute(*, queue: Queue) -> dict[str, Any]:
    """Progress, throughput, per-rater quality and trust, position bias, rates and agreement,
    computed now from the database."""
    from labeling.selectors import agreement, dashboards, rater_trust
    from labeling.selectors.stats_facts import stored_judgment_facts

    # One read of the judgments' facts, shared (with the criteria's answers when agreement
    # measures them): the stored facts plus the judgments not folded in yet, the same arrays as
    # a full computation (labeling.selectors.stats_facts).
    facts = stored_judgment_facts(queue=queue, criteria=queue_stats_criteria(queue))
    quality = dashboards.queue_raters(queue=queue, facts=facts)
    return {
        "computed_at": timezone.now(),
        "progress": dashboards.queue_progress(queue=queue),
        "throughput": dashboards.queue_throughput(queue=queue, facts=facts),
        **quality,
        **rater_trust.queue_trust(queue=queue, raters=quality["raters"], facts=facts),
        "agreement": agreement.queue_agreement(queue=queue, facts=facts),
    }


def queue_stats(*, queue: Queue) -> dict[str, Any]:
    """The queue's statistics: from the cache when nothing changed since they were computed."""
    key = queue_stats_cache_key(queue=queue, fingerprint=queue_stats_fingerprint(queue=queue))
    found = cache.get(key)
    if found is None:
        found = queue_stats_compute(queue=queue)
        cache.set(key, found, CACHE_SECONDS)
    return found


def queue_stats_refresh_active() -> int:
    """Compute the statistics of every active queue whose cached answer is out of date; returns
    how many were computed."""
    computed = 0
    for queue in Queue.objects.filter(status=Queue.Status.ACTIVE).select_related("rubric"):
        key = queue_stats_cache_key(queue=queue, fingerprint=queue_stats_fingerprint(queue=queue))
        if cache.get(key) is None:
            cache.set(key, queue_stats_compute(queue=queue), CACHE_SECONDS)
            computed += 1
    return computed
