"""Sensitive topics: a queue's per-tag policies (``Queue.tag_policies``) and what they mean.

A policy is keyed by a prompt tag (``Prompt.tags``)::

    {"politics": {"overlap": 5, "max_rater_share": 0.2}}

Either key may be left out. The rules, stated once here (the claim's SQL computes the same, see
``labeling.sql.tag_policies``; a test checks both agree on both databases):

- **item overlap** — a real (not gold) item wants ``max(queue.overlap, the highest policy overlap
  among its prompt's tags)`` judgments. Everything that compares an item's leases and judgments
  with "the overlap" uses it: the claim's room check, a skipped-for-later item coming back, a
  lease extended again, the queue's progress and a rater's "left" count, and ``check_integrity``'s
  ``item_overlap`` invariant. Gold items have no overlap (every rater answers them).
- **target of a tag** ``t`` — the judgments the queue wants on ``t``-tagged items: the sum of the
  item overlaps of the queue's real items whose prompt carries ``t`` (retired items included: the
  judgments they hold still count, and a target that shrank when an item is retired would turn
  past work into a violation).
- **a rater's work on** ``t`` — their assignments on those items that are leased (live, or expired
  and not yet swept) or submitted.
- **cap** — with ``max_rater_share`` ``s`` for ``t``: ``max(1, ceil(s * target))``. A claim never
  takes a rater's work on ``t`` past the cap: under the rater's row lock it counts their work on
  each capped tag, and passes over every item carrying a tag they are at the cap of (they get
  other items). An item with several capped tags must fit every cap. Targets are kept a few
  seconds per process (``queue_tag_targets``): a kept target can only be smaller than the true
  one, which makes the cap stricter, never looser.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, Expression, F, IntegerField, Q

from labeling.models import Assignment, Queue, QueueItem, User
from labeling.sql import statements
from labeling.sql.tag_policies import item_overlap_sql


def item_overlap(*, overlap: int, policies: Mapping[str, Any] | None, tags: Iterable[Any] | None) -> int:
    """An item's overlap: the queue's ``overlap``, or the highest overlap of the policies of its
    prompt's ``tags`` when that is higher."""
    best = overlap
    for tag in tags or ():
        policy = (policies or {}).get(tag) if isinstance(tag, str) else None
        if isinstance(policy, Mapping) and isinstance(policy.get("overlap"), int):
            best = max(best, policy["overlap"])
    return best


def overlap_tags(policies: Mapping[str, Any] | None) -> list[str]:
    """The tags whose policy sets an overlap (only their items can have one above the queue's)."""
    return sorted(t for t, p in (policies or {}).items() if isinstance(p, Mapping) and "overlap" in p)


def queue_most_overlap(*, queue: Queue) -> int:
    """The highest overlap any item of the queue can have (a cheap first bound for the claim)."""
    return item_overlap(
        overlap=queue.overlap, policies=queue.tag_policies, tags=list(queue.tag_policies or {})
    )


def queue_item_overlap(*, queue: Queue, item: QueueItem) -> int:
    """``item_overlap`` of one item of ``queue`` (its prompt's tags read when the queue has
    policies: one query unless the item came with its comparison and prompt)."""
    if not queue.tag_policies:
        return queue.overlap
    if "comparison" in item._state.fields_cache and "prompt" in item.comparison._state.fields_cache:
        tags = item.comparison.prompt.tags
    else:
        tags = QueueItem.objects.filter(pk=item.pk).values_list("comparison__prompt__tags", flat=True).first()
    return item_overlap(overlap=queue.overlap, policies=queue.tag_policies, tags=tags)


def tag_share_cap(*, share: float, target: int) -> int:
    """The most work one rater may hold on a tag: ``max(1, ceil(share * target))``."""
    # Rounded first so that 0.1 * 30 (3.0000000000000004 in floating point) is a cap of 3.
    return max(1, math.ceil(round(share * target, 9)))


def capped_tags(policies: Mapping[str, Any] | None) -> dict[str, float]:
    """The tags with a ``max_rater_share``, and that share."""
    return {
        tag: float(policy["max_rater_share"])
        for tag, policy in sorted((policies or {}).items())
        if isinstance(policy, Mapping) and policy.get("max_rater_share") is not None
    }


#: How long a process reuses a queue's tag targets (the claim reads them on every call).
TARGET_CACHE_SECONDS = 10.0
_TARGETS: dict[tuple[Any, ...], tuple[float, dict[str, int]]] = {}


def _rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def queue_tag_targets(*, queue: Queue, fresh: bool = False) -> dict[str, int]:
    """Per capped tag of the queue, its ``target`` (one statement, ``statements.queue_tag_targets``).

    A process keeps the answer ``TARGET_CACHE_SECONDS``, keyed by the queue's overlap and
    policies as read with it: a target only grows while they stay the same (items added; a tag
    added to a prompt), and a smaller target gives a smaller cap, so a kept target can make the
    cap stricter for a few seconds, never looser. A change of policies or overlap is a new key.
    """
    caps = capped_tags(queue.tag_policies)
    if not caps:
        return {}
    key = (queue.pk, queue.created_at, queue.overlap, json.dumps(queue.tag_policies, sort_keys=True))
    now = time.monotonic()
    kept = _TARGETS.get(key)
    if kept is not None and kept[0] > now and not fresh:
        return kept[1]
    if connection.vendor == "postgresql":
        # The plan's estimate grows with the queue; JIT compiling it costs more than running it.
        _rows("SELECT set_config('jit', 'off', true)", {})
    rows = _rows(statements.queue_tag_targets.sql(), {"queue_id": queue.pk, "tags": json.dumps(sorted(caps))})
    targets = {tag: 0 for tag in caps} | {tag: int(n or 0) for tag, n in rows}
    if len(_TARGETS) > 1000:  # old keys of changed policies: start again
        _TARGETS.clear()
    _TARGETS[key] = (now + TARGET_CACHE_SECONDS, targets)
    return targets


def tag_shares_for_rater(*, rater: User, queue: Queue, fresh: bool = False) -> dict[str, dict[str, Any]]:
    """Per capped tag of the queue: ``target``, ``cap`` and the rater's ``work`` (see above):
    the rater's work counted now (``statements.claim_tag_work``, their own assignments only), the
    targets as ``queue_tag_targets`` keeps them. Empty when the queue caps no tag."""
    caps = capped_tags(queue.tag_policies)
    if not caps:
        return {}
    targets = queue_tag_targets(queue=queue, fresh=fresh)
    rows = _rows(
        statements.claim_tag_work.sql(),
        {
            "queue_id": queue.pk,
            "rater_id": rater.pk,
            "tags": json.dumps(sorted(caps)),
            "leased": Assignment.Status.LEASED,
            "submitted": Assignment.Status.SUBMITTED,
        },
    )
    work = {tag: int(n) for tag, n in rows}
    return {
        tag: {
            "share": share,
            "target": targets[tag],
            "cap": tag_share_cap(share=share, target=targets[tag]),
            "work": work.get(tag, 0),
        }
        for tag, share in caps.items()
    }


def rater_tags_at_cap(*, rater: User, queue: Queue) -> list[str]:
    """The capped tags the rater may take no more items of in this queue (their work has reached
    the cap). The claim calls it under the rater's row lock, so their work cannot grow meanwhile."""
    return sorted(
        tag for tag, s in tag_shares_for_rater(rater=rater, queue=queue).items() if s["work"] >= s["cap"]
    )


_LIVE_OR_JUDGED = [Assignment.Status.LEASED, Assignment.Status.SUBMITTED]


@dataclass
class TagTally:
    """One policy tag of a queue, counted from the rows: ``target`` (judgments wanted on its
    items), ``cap`` (None without a share), each rater's ``work`` on it (rater id: count)."""

    target: int = 0
    cap: int | None = None
    work: dict[int, int] = field(default_factory=dict)

    @property
    def most(self) -> int:
        """The largest work of one rater."""
        return max(self.work.values(), default=0)


@dataclass
class TagWork:
    """A queue's work under given policies: its real items whose leases and judgments exceed
    their overlap (``(item id, tags, count, overlap)``), and a ``TagTally`` per policy tag."""

    items_over: list[tuple[int, list[str], int, int]]
    tags: dict[str, TagTally]


def queue_tag_work(*, queue_id: int, overlap: int, policies: Mapping[str, Any] | None) -> TagWork:
    """Every real item and live or submitted assignment of the queue, counted under ``overlap``
    and ``policies`` (which need not be the stored ones: a change is checked before it is made).
    Two queries, a pass over the queue's items and assignments in Python: for checks and admin
    changes, never on a rater's path."""
    tallies = {tag: TagTally() for tag in sorted(policies or {})}
    item_tags: dict[int, list[str]] = {}
    over = []
    counted = (
        QueueItem.objects.filter(queue_id=queue_id, is_gold=False)
        .annotate(n=Count("assignments", filter=Q(assignments__status__in=_LIVE_OR_JUDGED)))
        .values_list("pk", "comparison__prompt__tags", "n")
        .order_by("pk")
    )
    for pk, tags, n in counted.iterator():
        room = item_overlap(overlap=overlap, policies=policies, tags=tags)
        if n > room:
            over.append((pk, list(tags or []), n, room))
        mine = [t for t in tags or [] if t in tallies]
        if mine:
            item_tags[pk] = mine
            for tag in mine:
                tallies[tag].target += room
    for tag, share in capped_tags(policies).items():
        tallies[tag].cap = tag_share_cap(share=share, target=tallies[tag].target)
    if item_tags:
        for rater_id, item_id in Assignment.objects.filter(
            item__queue_id=queue_id, item__is_gold=False, status__in=_LIVE_OR_JUDGED
        ).values_list("rater_id", "item_id"):
            for tag in item_tags.get(item_id, ()):
                tallies[tag].work[rater_id] = tallies[tag].work.get(rater_id, 0) + 1
    return TagWork(items_over=over, tags=tallies)


class ItemOverlap(Expression):
    """The overlap of each ``QueueItem`` row in an ORM query (``item_overlap``, computed in the
    database from the queue's policies as stored when the statement runs: as ``claimed`` is
    compared with it under the item's lock, a policy changed meanwhile is honoured)."""

    output_field = IntegerField()

    def __init__(
        self, tags: Any = None, queue_id: Any = None, *, policy_tags: list[str] | None = None
    ) -> None:
        super().__init__()
        self.tags = tags if tags is not None else F("comparison__prompt__tags")
        self.queue_id = queue_id if queue_id is not None else F("queue_id")
        self.policy_tags = policy_tags

    @classmethod
    def for_queue(cls, queue: Queue) -> ItemOverlap:
        """For the items of ``queue``: items carrying none of its overlap tags (as read with the
        queue) skip the policy lookup (``labeling.sql.tag_policies.item_overlap_sql``)."""
        return cls(policy_tags=overlap_tags(queue.tag_policies))

    def get_source_expressions(self) -> list[Any]:
        return [self.tags, self.queue_id]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.tags, self.queue_id = exprs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        tags_sql, tags_params = compiler.compile(self.tags)
        queue_sql, queue_params = compiler.compile(self.queue_id)
        if tags_params or queue_params:  # columns only: the fragment repeats them
            raise ValueError("ItemOverlap takes columns, not values")
        if self.policy_tags is None:
            return item_overlap_sql(tags=tags_sql, queue_id=queue_sql), ()
        sql = item_overlap_sql(tags=tags_sql, queue_id=queue_sql, policy_tags="%s")
        return sql, (json.dumps(self.policy_tags),)
