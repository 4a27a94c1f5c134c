"""Every counter and invariant of the stored data, recomputed from the rows (``check_integrity``).

The database's constraints already forbid most of what must never happen (one lease per rater
and item, one judgment per assignment, one candidate per prompt/generator/sample); this finds the
rest: denormalized counters that drifted from the rows they count, and relations no single
constraint can state. Each check is one aggregate query, so it runs on a live database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Q

from comparisons.models import Candidate, Comparison, ComparisonCandidate
from labeling.models import Assignment, Judgment, Queue, QueueItem, Review, Rubric, SessionSeed, Turn
from labeling.selectors.tag_policies import capped_tags, item_overlap, queue_tag_work

_LIVE_OR_JUDGED = [Assignment.Status.LEASED, Assignment.Status.SUBMITTED]


@dataclass(frozen=True)
class Drift:
    """One broken invariant: which rule, which row, what the rows say and what is stored."""

    check: str
    model: str
    pk: Any
    expected: Any
    found: Any

    def __str__(self) -> str:
        return f"{self.check}: {self.model} {self.pk}: expected {self.expected}, found {self.found}"


#: Each check's name and what it guarantees, in the order they run.
CHECKS = {
    "item_claimed": "QueueItem.claimed = its leased + submitted assignments",
    "item_judged": "QueueItem.judged = its judgments",
    "item_overlap": "a real (not gold) item is leased or judged at most its overlap (queue's or tags')",
    "tag_share": "a rater's leases and judgments on a capped tag stay within its share cap",
    "submitted_has_judgment": "every submitted assignment has a judgment, and only submitted ones do",
    "rater_once_per_item": "a rater holds at most one assignment per item",
    "shown_order": "an assignment shows exactly its comparison's candidates",
    "comparison_members": "a comparison's candidates match its key and size, in positions 0..size-1",
    "comparison_prompt": "a comparison's candidates answer the comparison's prompt",
    "candidate_unique": "one candidate per (prompt, generator, sample index)",
    "rubric_frozen": "a rubric that judgments used is frozen",
    "seed_started": "SessionSeed.started = the sessions started from it, at most the queue's overlap",
    "session_branch": "a session's kept branch is one chain: positions 0, 1, 2, ... each on the one before",
    "turn_settled": "a ready turn has its ranking lease; a done model turn keeps a reply of its own prompt",
    "review_not_own": "a review's reviewer judged no assignment of the item reviewed",
    "review_label": "a review's ranking places each of its comparison's positions exactly once",
}


def integrity_drift(*, queue_id: int | None = None) -> Iterator[Drift]:
    """Every broken invariant, check by check (see ``CHECKS``); nothing when all hold.

    ``queue_id`` limits the queue checks to one queue (the comparison and candidate checks always
    cover everything)."""
    items = QueueItem.objects.all() if queue_id is None else QueueItem.objects.filter(queue_id=queue_id)
    counted = items.annotate(
        n_claimed=Count("assignments", filter=Q(assignments__status__in=_LIVE_OR_JUDGED), distinct=True),
        n_judged=Count("assignments__judgment", distinct=True),
    ).values_list(
        "pk",
        "claimed",
        "judged",
        "n_claimed",
        "n_judged",
        "is_gold",
        "queue__overlap",
        "queue_id",
        "comparison__prompt__tags",
    )
    # Sensitive topics: an item's overlap may be its tags' (labeling.selectors.tag_policies).
    queues = Queue.objects.all() if queue_id is None else Queue.objects.filter(pk=queue_id)
    policies = {pk: p for pk, p in queues.values_list("pk", "tag_policies") if p}
    overlap_broken = []
    for pk, claimed, judged, n_claimed, n_judged, is_gold, overlap, item_queue, tags in counted.order_by(
        "pk"
    ).iterator():
        if claimed != n_claimed:
            yield Drift("item_claimed", "QueueItem", pk, n_claimed, claimed)
        if judged != n_judged:
            yield Drift("item_judged", "QueueItem", pk, n_judged, judged)
        room = item_overlap(overlap=overlap, policies=policies.get(item_queue), tags=tags)
        if not is_gold and n_claimed > room:
            overlap_broken.append(Drift("item_overlap", "QueueItem", pk, f"<= {room}", n_claimed))
    yield from overlap_broken
    yield from _tag_share_drift(policies)

    assignments = Assignment.objects.all()
    if queue_id is not None:
        assignments = assignments.filter(item__queue_id=queue_id)
    for pk, status in (
        assignments.filter(
            Q(status=Assignment.Status.SUBMITTED, judgment__isnull=True)
            | (~Q(status=Assignment.Status.SUBMITTED) & Q(judgment__isnull=False))
        )
        .values_list("pk", "status")
        .order_by("pk")
    ):
        expected = "a judgment" if status == Assignment.Status.SUBMITTED else "no judgment"
        yield Drift("submitted_has_judgment", "Assignment", pk, expected, status)
    for item_id, rater_id, n in (
        assignments.values("item_id", "rater_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("item_id", "rater_id", "n")
    ):
        yield Drift("rater_once_per_item", "QueueItem", item_id, f"1 assignment of rater {rater_id}", n)
    for pk, shown, key in (
        assignments.values_list("pk", "shown_order", "item__comparison__candidate_key")
        .order_by("pk")
        .iterator()
    ):
        if sorted(shown or []) != sorted(int(x) for x in key.split(",")):
            yield Drift("shown_order", "Assignment", pk, key, shown)

    yield from _comparison_drift()
    yield from _session_drift(queue_id=queue_id)
    yield from _review_drift(queue_id=queue_id)

    for prompt_id, generator_id, sample_index, n in (
        Candidate.objects.values("prompt_id", "generator_id", "sample_index")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("prompt_id", "generator_id", "sample_index", "n")
    ):
        where = f"prompt {prompt_id} generator {generator_id} sample {sample_index}"
        yield Drift("candidate_unique", "Candidate", where, 1, n)
    used = Judgment.objects.values("rubric_id")
    for pk in Rubric.objects.filter(pk__in=used, frozen=False).values_list("pk", flat=True):
        yield Drift("rubric_frozen", "Rubric", pk, "frozen", "editable")


def _tag_share_drift(policies: dict[int, Any]) -> Iterator[Drift]:
    """Raters over a tag's share cap (``labeling.selectors.tag_policies``), per queue with caps."""
    overlaps = dict(Queue.objects.filter(pk__in=list(policies)).values_list("pk", "overlap"))
    for pk in sorted(policies):
        if not capped_tags(policies[pk]):
            continue
        work = queue_tag_work(queue_id=pk, overlap=overlaps[pk], policies=policies[pk])
        for tag, tally in work.tags.items():
            for rater_id, n in sorted(tally.work.items()):
                if tally.cap is not None and n > tally.cap:
                    where = f"{pk} tag {tag!r} rater {rater_id}"
                    yield Drift("tag_share", "Queue", where, f"<= {tally.cap} of {tally.target}", n)


def _comparison_drift() -> Iterator[Drift]:
    members: dict[int, list[tuple[int, int]]] = {}
    for comparison_id, position, candidate_id in ComparisonCandidate.objects.values_list(
        "comparison_id", "position", "candidate_id"
    ).iterator():
        members.setdefault(comparison_id, []).append((position, candidate_id))
    for pk, key, size in (
        Comparison.objects.values_list("pk", "candidate_key", "size").order_by("pk").iterator()
    ):
        found = sorted(members.get(pk, []))
        ids = ",".join(str(c) for c in sorted(c for _, c in found))
        positions = [p for p, _ in found]
        if ids != key or positions != list(range(size)):
            yield Drift(
                "comparison_members", "Comparison", pk, f"{key} at 0..{size - 1}", f"{ids} at {positions}"
            )
    for pk in (
        ComparisonCandidate.objects.exclude(candidate__prompt_id=F("comparison__prompt_id"))
        .values_list("comparison_id", flat=True)
        .distinct()
    ):
        yield Drift(
            "comparison_prompt", "Comparison", pk, "candidates of its prompt", "a candidate of another"
        )


def _session_drift(*, queue_id: int | None) -> Iterator[Drift]:
    seeds = SessionSeed.objects.all() if queue_id is None else SessionSeed.objects.filter(queue_id=queue_id)
    for pk, started, n, overlap in seeds.annotate(n=Count("sessions")).values_list(
        "pk", "started", "n", "queue__overlap"
    ):
        if started != n or n > overlap:
            yield Drift("seed_started", "SessionSeed", pk, f"{n} (at most {overlap})", started)
    turns = Turn.objects.filter(abandoned=False)
    if queue_id is not None:
        turns = turns.filter(session__queue_id=queue_id)
    branches: dict[int, list[tuple[int, int, int | None]]] = {}
    for row in turns.values_list("session_id", "position", "pk", "parent_id").order_by(
        "session_id", "position"
    ):
        branches.setdefault(row[0], []).append(row[1:])
    for session_id, chain in branches.items():
        ids = [pk for _, pk, _ in chain]
        parents = [None, *ids[:-1]]
        if [pos for pos, _, _ in chain] != list(range(len(chain))) or [p for _, _, p in chain] != parents:
            yield Drift("session_branch", "Session", session_id, "one chain from position 0", chain)
    for pk, status, assignment, chosen_prompt, prompt in turns.filter(role=Turn.Role.ASSISTANT).values_list(
        "pk", "status", "assignment_id", "chosen__prompt_id", "prompt_id"
    ):
        if status == Turn.Status.READY and assignment is None:
            yield Drift("turn_settled", "Turn", pk, "a ranking lease", "none")
        if status == Turn.Status.DONE and chosen_prompt != prompt:
            yield Drift("turn_settled", "Turn", pk, f"a kept reply to prompt {prompt}", chosen_prompt)


def _review_drift(*, queue_id: int | None) -> Iterator[Drift]:
    reviews = Review.objects.all() if queue_id is None else Review.objects.filter(item__queue_id=queue_id)
    own = reviews.filter(
        item__assignments__rater_id=F("reviewer_id"), item__assignments__status=Assignment.Status.SUBMITTED
    )
    for pk, reviewer_id in own.values_list("pk", "reviewer_id").distinct():
        yield Drift("review_not_own", "Review", pk, "a reviewer who did not judge the item", reviewer_id)
    for pk, ranking, size in reviews.filter(ranking__isnull=False).values_list(
        "pk", "ranking", "item__comparison__size"
    ):
        if sorted(p for group in ranking or [] for p in group) != list(range(size)):
            yield Drift("review_label", "Review", pk, f"positions 0..{size - 1} once each", ranking)
