"""Queues: creation, items, gold."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from comparisons.models import Comparison, Prompt
from labeling.errors import ApplicationError
from labeling.models import Queue, QueueItem, Rubric, User
from labeling.services.adaptive import queue_reprioritize

# --------------------------------------------------------------------------------- queues


#: ``queue_create``'s plain settings (the rest are objects: rubric, prompts, members, qualification).
QUEUE_SETTINGS = (
    "kind",
    "overlap",
    "pairing",
    "size",
    "lease_seconds",
    "priority",
    "guidelines",
    "content_warning",
    "gold_rate",
    "skip_policy",
    "max_open_leases",
)


def queue_create(
    *,
    name: str,
    rubric: Rubric,
    kind: str = Queue.Kind.PAIRWISE,
    overlap: int = 1,
    prompts: Iterable[Prompt] = (),
    pairing: str = "all_pairs",
    size: int | None = None,
    members: Iterable[User] = (),
    lease_seconds: int | None = None,
    priority: int = 0,
    guidelines: str = "",
    content_warning: str = "",
    gold_rate: float = 0.0,
    skip_policy: str = Queue.SkipPolicy.OTHERS,
    max_open_leases: int = 1,
    qualification: Queue | None = None,
    qualification_min_items: int = 5,
    qualification_min_accuracy: float = 0.8,
    seed: int = 0,
) -> Queue:
    """Create a queue and its items from the prompts' candidates, all or nothing."""

    if kind not in (Queue.Kind.PAIRWISE, Queue.Kind.RANKING):
        raise ApplicationError("kind: must be pairwise or ranking", field="kind")
    if not 1 <= overlap <= 50:
        raise ApplicationError("overlap: must be between 1 and 50", field="overlap")
    if Queue.objects.filter(name=name).exists():
        raise ApplicationError(f"name: a queue named {name!r} exists", field="name", status_code=409)
    size = size or (2 if kind == Queue.Kind.PAIRWISE else 4)
    if kind == Queue.Kind.PAIRWISE and size != 2:
        raise ApplicationError("size: a pairwise queue compares 2 responses", field="size")
    if not 2 <= size <= 9:
        raise ApplicationError("size: must be between 2 and 9", field="size")
    if pairing not in Queue.Pairing.values:
        raise ApplicationError(f"pairing: must be one of {', '.join(Queue.Pairing.values)}", field="pairing")
    if pairing == Queue.Pairing.ADAPTIVE and kind != Queue.Kind.PAIRWISE:
        raise ApplicationError("pairing: adaptive pairing is for pairwise queues", field="pairing")
    if not 0.0 <= gold_rate <= 1.0:
        raise ApplicationError("gold_rate: must be between 0 and 1", field="gold_rate")
    with transaction.atomic():
        queue = Queue.objects.create(
            name=name,
            kind=kind,
            rubric=rubric,
            overlap=overlap,
            lease_seconds=lease_seconds or Queue._meta.get_field("lease_seconds").get_default(),
            priority=priority,
            guidelines=guidelines,
            content_warning=content_warning,
            gold_rate=gold_rate,
            skip_policy=skip_policy,
            pairing=pairing,
            max_open_leases=max_open_leases,
            qualification=qualification,
            qualification_min_items=qualification_min_items,
            qualification_min_accuracy=qualification_min_accuracy,
        )
        queue.members.add(*members)
        queue_add_prompts(queue=queue, prompts=prompts, size=size, seed=seed)
    return queue


def queue_add_prompts(
    *, queue: Queue, prompts: Iterable[Prompt], size: int | None = None, seed: int = 0
) -> int:
    """Build the queue's comparisons for these prompts (its pairing strategy) and add the new ones.

    Items that exist are left as they are (claims, judgments, priorities). Returns how many were added.
    """
    from comparisons.services import comparisons_build

    if size is None:
        size = (
            2
            if queue.kind == Queue.Kind.PAIRWISE
            else (queue.items.values_list("comparison__size", flat=True).first() or 4)
        )
    # Adaptive queues hold all pairs; the adaptive part is the order they are handed out in.
    pairing = Queue.Pairing.ALL_PAIRS if queue.pairing == Queue.Pairing.ADAPTIVE else queue.pairing
    comparisons = comparisons_build(prompts=list(prompts), pairing=pairing, size=size, seed=seed)
    added = queue_add_comparisons(queue=queue, comparisons=comparisons)
    if queue.pairing == Queue.Pairing.ADAPTIVE and added:
        queue_reprioritize(queue=queue)
    return added


def queue_add_gold(*, queue: Queue, gold: list[dict[str, Any]]) -> int:
    """Mark comparisons as gold items of the queue (added if missing), with their known answers.

    Answers are in the comparison's stored order: ``preference`` < 0 means position 0 is better;
    ``ranking`` lists groups of positions, best first. All or nothing.
    """
    with transaction.atomic():
        comparisons = {c.pk: c for c in Comparison.objects.filter(pk__in=[g["comparison"] for g in gold])}
        for i, entry in enumerate(gold):
            comparison = comparisons.get(entry["comparison"])
            if comparison is None:
                raise ApplicationError(
                    f"items[{i}].comparison: no comparison {entry['comparison']}",
                    field=f"items[{i}].comparison",
                )
            if comparison.size == 2:
                if entry.get("preference") is None:
                    raise ApplicationError(
                        f"items[{i}].preference: required for a pair", field=f"items[{i}].preference"
                    )
                answer: dict[str, Any] = {"preference": entry["preference"]}
            else:
                ranking = entry.get("ranking")
                flat = (
                    sorted(p for group in ranking or [] for p in group) if isinstance(ranking, list) else None
                )
                if flat != list(range(comparison.size)):
                    raise ApplicationError(
                        f"items[{i}].ranking: must place positions 0..{comparison.size - 1} once each",
                        field=f"items[{i}].ranking",
                    )
                answer = {"ranking": ranking}
            QueueItem.objects.update_or_create(
                queue=queue, comparison=comparison, defaults={"is_gold": True, "gold_answer": answer}
            )
    return queue.items.filter(is_gold=True).count()


def queue_add_comparisons(*, queue: Queue, comparisons: Iterable[Comparison]) -> int:
    """Add comparisons as items; ones already in the queue are left as they are. Returns how many were new."""
    before = queue.items.count()
    QueueItem.objects.bulk_create(
        [QueueItem(queue=queue, comparison=c) for c in comparisons], ignore_conflicts=True
    )
    return queue.items.count() - before
