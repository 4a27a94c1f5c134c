"""Queues: creation, items, gold.

Items are built from the prompts' candidates by ``comparisons_build``, one copy of each text
(``dedupe``), and created in an order that interleaves prompts (``interleave``, on by default).
The claim hands out a queue's items by (priority desc, id); a new item's priority is minus its
*round*, and its id follows the creation order. A queue built at once gets one round per item,
in the order a greedy pick makes (most items left first, never the prompt of the item just
before): the fewest back-to-back items possible. Items added later are spread over the rounds of
the items not handed out yet (each after that round's items), then get rounds of their own, so
they interleave with what is left. Adaptive queues order their items themselves
(``queue_reprioritize``); ``interleave=False`` keeps priority 0 and the build order.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from comparisons.dedupe import dedupe_clean
from comparisons.importing import shown_value
from comparisons.models import Comparison, Prompt
from comparisons.services import LeftOut, comparisons_build
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
#: How ``queue_create`` and ``queue_add_prompts`` build items, stored on the queue so that prompts
#: added later are built the same way: ``dedupe`` (``exact``, ``similar`` or ``off``),
#: ``similarity`` (the ``similar`` threshold, 0..1) and ``interleave`` (False: items of one prompt
#: back to back, in the order they are built).
QUEUE_BUILD_SETTINGS = ("dedupe", "similarity", "interleave")


@dataclass(frozen=True)
class QueueItemsAdded:
    """What building items did: ``added`` new items; ``left_out``, what dedupe left out
    (pairs, duplicates, prompts: see ``comparisons.services.LeftOut``)."""

    added: int
    left_out: LeftOut


@dataclass(frozen=True)
class QueueCreated:
    """A new queue, with what building its items did."""

    queue: Queue
    items: QueueItemsAdded


def queue_create(**kwargs: Any) -> Queue:
    """Create a queue and its items, all or nothing: ``queue_create_with_items(...).queue``."""
    return queue_create_with_items(**kwargs).queue


def queue_create_with_items(
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
    dedupe: str = "exact",
    similarity: float | None = None,
    interleave: bool = True,
) -> QueueCreated:
    """Create a queue and its items from the prompts' candidates, all or nothing.

    Items are built as ``queue_add_prompts`` builds them (``dedupe``, ``similarity``,
    ``interleave``); the result says how many were added and what dedupe left out. Raises
    ApplicationError naming the field of a bad setting, with nothing written.
    """
    if kind not in (Queue.Kind.PAIRWISE, Queue.Kind.RANKING):
        raise ApplicationError("kind: must be pairwise or ranking", field="kind")
    if not 1 <= overlap <= 50:
        raise ApplicationError("overlap: must be between 1 and 50", field="overlap")
    if Queue.objects.filter(name=name).exists():
        raise ApplicationError(
            f"name: a queue named {shown_value(name)} exists", field="name", status_code=409
        )
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
    similarity = dedupe_clean(dedupe, similarity)
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
            dedupe=dedupe,
            similarity=similarity,
            interleave=interleave,
        )
        queue.members.add(*members)
        items = queue_add_prompts(
            queue=queue,
            prompts=prompts,
            size=size,
            seed=seed,
            dedupe=dedupe,
            similarity=similarity,
            interleave=interleave,
        )
    return QueueCreated(queue=queue, items=items)


def queue_add_prompts(
    *,
    queue: Queue,
    prompts: Iterable[Prompt],
    size: int | None = None,
    seed: int = 0,
    dedupe: str | None = None,
    similarity: float | None = None,
    interleave: bool | None = None,
) -> QueueItemsAdded:
    """Build the queue's comparisons for these prompts (its pairing strategy) and add the new ones.

    One copy of each text is shown (``comparisons_build``'s ``dedupe``: ``exact`` by default,
    ``similar`` with a ``similarity`` threshold, or ``off``); with ``interleave`` (the default)
    the new items are ordered so that consecutive items come from different prompts (see the
    module docstring). Items that exist are left as they are (claims, judgments, priorities).
    Returns how many items were added and what dedupe left out. Raises InvalidField naming
    ``dedupe`` or ``similarity``. Settings not given are the queue's own (set when it was created).
    """
    if dedupe is None:
        dedupe, similarity = queue.dedupe, queue.similarity if similarity is None else similarity
    if interleave is None:
        interleave = queue.interleave
    if size is None:
        size = (
            2
            if queue.kind == Queue.Kind.PAIRWISE
            else (queue.items.values_list("comparison__size", flat=True).first() or 4)
        )
    # Adaptive queues hold all pairs; the adaptive part is the order they are handed out in.
    pairing = Queue.Pairing.ALL_PAIRS if queue.pairing == Queue.Pairing.ADAPTIVE else queue.pairing
    built = comparisons_build(
        prompts=list(prompts), pairing=pairing, size=size, seed=seed, dedupe=dedupe, similarity=similarity
    )
    added = queue_add_comparisons(queue=queue, comparisons=built, interleave=interleave)
    if queue.pairing == Queue.Pairing.ADAPTIVE and added:
        queue_reprioritize(queue=queue)
    return QueueItemsAdded(added=added, left_out=built.left_out)


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


def queue_add_comparisons(*, queue: Queue, comparisons: Iterable[Comparison], interleave: bool = True) -> int:
    """Add comparisons as items; ones already in the queue are left as they are. Returns how many were new.

    With ``interleave`` (ignored by adaptive queues, which set priorities themselves) the new
    items get the creation order and priorities that interleave prompts (module docstring);
    without it they get priority 0 and are created in the order given.
    """
    with transaction.atomic():
        rows = list(
            queue.items.order_by("-priority", "id").values_list(
                "comparison_id", "comparison__prompt_id", "priority", "is_gold", "retired", "claimed"
            )
        )
        present = {row[0] for row in rows}
        new: list[Comparison] = []
        for comparison in comparisons:
            if comparison.pk not in present:
                present.add(comparison.pk)
                new.append(comparison)
        if not new:
            return 0
        if interleave and queue.pairing != Queue.Pairing.ADAPTIVE:
            rounds: dict[int, list[int]] = defaultdict(list)
            for _, prompt_id, priority, is_gold, retired, claimed in rows:
                if not (is_gold or retired or claimed >= queue.overlap):  # what claims still hand out
                    rounds[-priority].append(prompt_id)
            plan = _interleave([c.prompt_id for c in new], rounds)
            items = [QueueItem(queue=queue, comparison=new[i], priority=-round_) for i, round_ in plan]
        else:
            items = [QueueItem(queue=queue, comparison=c) for c in new]
        # ignore_conflicts: a concurrent add of the same comparison keeps the first item.
        QueueItem.objects.bulk_create(items, ignore_conflicts=True)
        return queue.items.count() - len(rows)


def _interleave(prompts: Sequence[int], rounds: dict[int, list[int]]) -> list[tuple[int, int]]:
    """Creation order and round for new items, given the prompt of each (in build order) and the
    prompts of the queue's open items by round (round = -priority; in claim order within one).

    Returns ``(index into prompts, round)`` pairs in creation order. The claim order is by round,
    then id, so new items can join the order only after the last open item of a round (or before
    the first one, when rounds before it are free). The order is built greedily, as the classic
    rule for "no two alike in a row" does: next comes the prompt with the most items left, open
    and new together, that is not the prompt just before; the next open item goes first when it
    has at least as many. After the last open item, each new item gets a round of its own, which
    leaves a place after every item for items added later. For a new queue this gives the fewest
    back-to-back items possible. A prompt's items keep their build order. O((n + m) log p) for
    n new items of p prompts and m open items.
    """
    pending: dict[int, deque[int]] = {}
    for index, prompt in enumerate(prompts):
        pending.setdefault(prompt, deque()).append(index)
    ordered = sorted(rounds)
    left = Counter(prompts) + Counter(p for items in rounds.values() for p in items)  # open and new
    first_seen = {prompt: n for n, prompt in enumerate(pending)}
    # Prompts with new items, most items left first: entries go stale when ``left`` changes.
    heap = [(-left[p], first_seen[p], p) for p in pending]
    heapq.heapify(heap)
    plan: list[tuple[int, int]] = []
    before: int | None = None  # the prompt of the last item in claim order so far

    def best_new() -> int | None:
        """The prompt with new items and the most items left that is not ``before``."""
        skipped, found = [], None
        while heap:
            count, n, prompt = heapq.heappop(heap)
            if prompt not in pending or -count != left[prompt]:
                continue  # stale
            skipped.append((count, n, prompt))
            if prompt != before:
                found = prompt
                break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found

    def emit(prompt: int, round_: int) -> None:
        nonlocal before
        plan.append((pending[prompt].popleft(), round_))
        if not pending[prompt]:
            del pending[prompt]
        left[prompt] -= 1
        heapq.heappush(heap, (-left[prompt], first_seen[prompt], prompt))
        before = prompt

    def place(round_: int, following: int) -> None:
        """New items after the open items of ``round_``, until ``following`` (the prompt of the next
        open item) should come."""
        while (prompt := best_new()) is not None:
            if following != before and left[following] >= left[prompt]:
                return
            emit(prompt, round_)

    if ordered and ordered[0] >= 1:  # round ordered[0] - 1 comes before every open item
        place(ordered[0] - 1, rounds[ordered[0]][0])
    for position, round_ in enumerate(ordered):
        for prompt in rounds[round_]:
            left[prompt] -= 1
            if prompt in pending:
                heapq.heappush(heap, (-left[prompt], first_seen[prompt], prompt))
            before = prompt
        # Rounds ahead of 0 hold items put ahead of everything: nothing joins them. After the last
        # open round, the new items left get rounds of their own (below).
        if round_ >= 0 and position + 1 < len(ordered):
            place(round_, rounds[ordered[position + 1]][0])
    tail = max(ordered[-1] + 1, 0) if ordered else 0
    while pending:
        pick = best_new()
        emit(next(iter(pending)) if pick is None else pick, tail)  # None: back to back it is
        tail += 1
    return plan
