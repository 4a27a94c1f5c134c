"""Queues: creation, items, gold.

Items are built from the prompts' candidates by ``comparisons_build``, one copy of each text
(``dedupe``), and created in an order that interleaves prompts (``interleave``, on by default).
The claim hands out a queue's items by (priority desc, id); a new item's priority is minus its
*round*, and its id follows the creation order. A queue built at once gets one round per item,
in the order a greedy pick makes (most items left first, never the prompt of the item just
before): the fewest back-to-back items possible. Items added later are spread over the rounds of
the items not handed out yet (each after that round's items), then get rounds of their own, so
they interleave with what is left. Adaptive queues order their items themselves
(``queue_reprioritize``); ``interleave=False`` keeps priority 0 and the build order. The order
itself is computed by ``labeling.services.interleave``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from comparisons.dedupe import dedupe_clean
from comparisons.importing import shown_value
from comparisons.models import Comparison, Prompt
from comparisons.services import LeftOut, comparisons_build
from labeling.audit import audit_record
from labeling.errors import ApplicationError, column_check, id_or_none
from labeling.models import Queue, QueueItem, Rubric, User
from labeling.services.adaptive import queue_reprioritize
from labeling.services.interleave import interleave_plan
from labeling.services.queue_admin import queue_setting_clean
from labeling.services.tag_policies import queue_tag_policies_clean

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
    "tag_policies",
    "disturbing",
    "daily_cap",
    "break_after",
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
    allow_empty: bool = False,
    tag_policies: Mapping[str, Any] | None = None,
    disturbing: bool | None = False,
    daily_cap: int | None = None,
    break_after: int | None = None,
) -> QueueCreated:
    """Create a queue and its items from the prompts' candidates, all or nothing.

    Items are built as ``queue_add_prompts`` builds them (``dedupe``, ``similarity``,
    ``interleave``); the result says how many were added and what dedupe left out. A pairwise
    queue compares 2 responses, a ranking queue ``size`` 3..9 (default 4). Every setting is
    checked against its column (``labeling.errors.column_check``) and the rules of
    ``queue_setting_clean``; ``tag_policies`` (sensitive topics) by ``queue_tag_policies_clean``; ``disturbing``,
    ``daily_cap`` and ``break_after`` (rater wellbeing; None: off) as ``queue_update_settings`` takes them.
    Raises ApplicationError naming the field of a bad setting, and
    naming ``prompts`` when no item could be built from them; nothing is written then.
    ``allow_empty`` is for the demo only, whose queue may come before its prompts have two
    responses each (``manage.py demo --samples 1``) and gets its pairs on a later run.
    """
    if kind not in (Queue.Kind.PAIRWISE, Queue.Kind.RANKING):
        raise ApplicationError("kind: must be pairwise or ranking", field="kind")
    if not isinstance(name, str) or not name.strip():
        raise ApplicationError("name: required", field="name")
    name = column_check(Queue._meta.get_field("name"), name)
    overlap, max_open_leases, priority = (
        queue_setting_clean(key, value)
        for key, value in (("overlap", overlap), ("max_open_leases", max_open_leases), ("priority", priority))
    )
    if lease_seconds is not None:
        lease_seconds = queue_setting_clean("lease_seconds", lease_seconds)
    guidelines = queue_setting_clean("guidelines", guidelines)
    content_warning = queue_setting_clean("content_warning", content_warning)
    if Queue.objects.filter(name=name).exists():
        raise ApplicationError(
            f"name: a queue named {shown_value(name)} exists", field="name", status_code=409
        )
    size = size or (2 if kind == Queue.Kind.PAIRWISE else 4)
    if kind == Queue.Kind.PAIRWISE and size != 2:
        raise ApplicationError("size: a pairwise queue compares 2 responses", field="size")
    if kind == Queue.Kind.RANKING and (
        isinstance(size, bool) or not isinstance(size, int) or not 3 <= size <= 9
    ):
        raise ApplicationError(
            "size: a ranking queue ranks 3 to 9 responses (2 make a pair: use a pairwise queue)", field="size"
        )
    if pairing not in Queue.Pairing.values:
        raise ApplicationError(f"pairing: must be one of {', '.join(Queue.Pairing.values)}", field="pairing")
    if pairing == Queue.Pairing.ADAPTIVE and kind != Queue.Kind.PAIRWISE:
        raise ApplicationError("pairing: adaptive pairing is for pairwise queues", field="pairing")
    if skip_policy not in Queue.SkipPolicy.values:
        raise ApplicationError(
            f"skip_policy: must be one of {', '.join(Queue.SkipPolicy.values)}", field="skip_policy"
        )
    gold_rate = column_check(Queue._meta.get_field("gold_rate"), gold_rate, low=0.0, high=1.0)
    tag_policies = queue_tag_policies_clean(tag_policies, overlap=overlap)
    disturbing = queue_setting_clean("disturbing", bool(disturbing))
    daily_cap, break_after = (
        None if value is None else queue_setting_clean(key, value)
        for key, value in (("daily_cap", daily_cap), ("break_after", break_after))
    )
    qualification_min_items = column_check(
        Queue._meta.get_field("qualification_min_items"), qualification_min_items, low=1
    )
    qualification_min_accuracy = column_check(
        Queue._meta.get_field("qualification_min_accuracy"), qualification_min_accuracy, low=0.0, high=1.0
    )
    similarity = dedupe_clean(dedupe, similarity)
    prompts = list(prompts)
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
            tag_policies=tag_policies,
            disturbing=disturbing,
            daily_cap=daily_cap,
            break_after=break_after,
        )
        queue.members.add(*members)
        audit_record(
            "queue.create", target=queue, changes={"kind": kind, "rubric": str(rubric), "overlap": overlap}
        )
        items = queue_add_prompts(
            queue=queue,
            prompts=prompts,
            size=size,
            seed=seed,
            dedupe=dedupe,
            similarity=similarity,
            interleave=interleave,
        )
        if not items.added and not allow_empty:
            raise ApplicationError(
                _nothing_built(prompts=len(prompts), size=size, pairing=pairing, left_out=items.left_out),
                field="prompts",
            )
    return QueueCreated(queue=queue, items=items)


def _nothing_built(*, prompts: int, size: int, pairing: str, left_out: LeftOut) -> str:
    """Why a new queue would have no item, and what to do about it."""
    if not prompts:
        return "prompts: no prompts chosen, so no item could be built"
    across = " from different generators" if pairing == Queue.Pairing.CROSS_GENERATOR else ""
    repeats = (
        f"; {left_out.prompts} of them have enough responses, but too few different texts"
        if left_out.prompts
        else ""
    )
    return (
        f"prompts: no item could be built: each item needs {size} different responses to one prompt"
        f"{across}, and none of the {prompts} prompt(s) chosen has that many{repeats}. Generate or "
        "import responses first, then create the queue."
    )


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
    pk = Comparison._meta.get_field("id")
    with transaction.atomic():
        wanted = [id_or_none(g.get("comparison"), pk) for g in gold]
        comparisons = {
            c.pk: c for c in Comparison.objects.filter(pk__in=[w for w in wanted if w is not None])
        }
        for i, entry in enumerate(gold):
            found = wanted[i]
            comparison = comparisons.get(found) if found is not None else None
            if comparison is None:
                raise ApplicationError(
                    f"items[{i}].comparison: no comparison {shown_value(entry.get('comparison'))}",
                    field=f"items[{i}].comparison",
                )
            if comparison.size == 2:
                preference = entry.get("preference")
                if preference is None:
                    raise ApplicationError(
                        f"items[{i}].preference: required for a pair", field=f"items[{i}].preference"
                    )
                if (
                    isinstance(preference, bool)
                    or not isinstance(preference, int)
                    or not -3 <= preference <= 3
                ):
                    raise ApplicationError(
                        f"items[{i}].preference: must be an integer from -3 to 3",
                        field=f"items[{i}].preference",
                    )
                answer: dict[str, Any] = {"preference": preference}
            else:
                ranking = entry.get("ranking")
                well_formed = isinstance(ranking, list) and all(
                    isinstance(group, list) and group and all(type(p) is int for p in group)
                    for group in ranking
                )
                flat = sorted(p for group in ranking or [] for p in group) if well_formed else None
                if flat != list(range(comparison.size)):
                    raise ApplicationError(
                        f"items[{i}].ranking: must place positions 0..{comparison.size - 1} once each, "
                        "as groups best first, like [[0], [2, 1]]",
                        field=f"items[{i}].ranking",
                    )
                answer = {"ranking": ranking}
            QueueItem.objects.update_or_create(
                queue=queue, comparison=comparison, defaults={"is_gold": True, "gold_answer": answer}
            )
    audit_record("queue.gold", target=queue, changes={"gold_items": len(gold)})
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
            plan = interleave_plan([c.prompt_id for c in new], rounds)
            items = [QueueItem(queue=queue, comparison=new[i], priority=-round_) for i, round_ in plan]
        else:
            items = [QueueItem(queue=queue, comparison=c) for c in new]
        # ignore_conflicts: a concurrent add of the same comparison keeps the first item.
        QueueItem.objects.bulk_create(items, ignore_conflicts=True)
        added = queue.items.count() - len(rows)
        audit_record("queue.items_add", target=queue, changes={"added": added})
        return added
