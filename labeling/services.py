"""Writes for labeling: users, rubrics, queues, claiming work and recording judgments.

Lock order, everywhere: rater row -> assignment row -> queue item row. Keeping one order is
what keeps concurrent claims, submits, skips and lease expiry free of deadlocks on PostgreSQL.
On SQLite every transaction starts IMMEDIATE (see settings), which serializes writers.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from comparisons.models import Comparison, Prompt
from labeling.apis_common import ApplicationError, Conflict
from labeling.models import Assignment, Criterion, Judgment, Queue, QueueItem, Rubric, User
from labeling.selectors import LABELS

# ---------------------------------------------------------------------------------- users


def user_create(*, username: str, password: str, role: str, email: str = "") -> User:
    """Create a user with a role. Admins get Django admin access; nobody else does."""
    if role not in User.Role.values:
        raise ApplicationError(f"role: must be one of {', '.join(User.Role.values)}", field="role")
    if not username:
        raise ApplicationError("username: required", field="username")
    if User.objects.filter(username=username).exists():
        raise ApplicationError(f"username: {username!r} is taken", field="username", status_code=409)
    user = User(username=username, email=email, role=role)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError(f"password: {' '.join(exc.messages)}", field="password")
    user.set_password(password)
    user.is_staff = user.is_superuser = role == User.Role.ADMIN
    user.save()
    return user


# -------------------------------------------------------------------------------- rubrics


def rubric_create(*, name: str, criteria: list[dict[str, Any]], description: str = "") -> Rubric:
    """Create a rubric; a name that exists gets the next version (used versions stay frozen)."""
    if not name:
        raise ApplicationError("name: required", field="name")
    keys = set()
    for i, c in enumerate(criteria):
        key = c.get("key")
        if not key:
            raise ApplicationError(f"criteria[{i}].key: required", field=f"criteria[{i}].key")
        if key in keys:
            raise ApplicationError(f"criteria[{i}].key: duplicate key {key!r}", field=f"criteria[{i}].key")
        keys.add(key)
        if c.get("kind") not in Criterion.Kind.values:
            raise ApplicationError(
                f"criteria[{i}].kind: must be one of {', '.join(Criterion.Kind.values)}",
                field=f"criteria[{i}].kind",
            )
    with transaction.atomic():
        latest = Rubric.objects.filter(name=name).order_by("-version").first()
        rubric = Rubric.objects.create(
            name=name, version=(latest.version + 1) if latest else 1, description=description
        )
        Criterion.objects.bulk_create(
            Criterion(
                rubric=rubric,
                key=c["key"],
                question=c.get("question", c["key"]),
                help_text=c.get("help_text", ""),
                kind=c["kind"],
                required=bool(c.get("required", False)),
                position=i,
            )
            for i, c in enumerate(criteria)
        )
    return rubric


# --------------------------------------------------------------------------------- queues


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


# ------------------------------------------------------------------------- claiming work


def _shown_order(item: QueueItem) -> list[int]:
    ids = list(item.comparison.members.order_by("position").values_list("candidate_id", flat=True))
    random.SystemRandom().shuffle(ids)
    return ids


def assignments_expire(*, queue: Queue | None = None, now: datetime | None = None, limit: int = 1000) -> int:
    """Release leases whose time ran out, so their items can go to other raters.

    Each lease is released in its own short transaction (assignment row, then item row), and only
    if it is still leased: two processes expiring the same lease release its slot once.
    """
    now = now or timezone.now()
    qs = Assignment.objects.filter(status=Assignment.Status.LEASED, expires_at__lte=now)
    if queue is not None:
        qs = qs.filter(item__queue=queue)
    released = 0
    for assignment_id, item_id in qs.order_by("id").values_list("id", "item_id")[:limit]:
        with transaction.atomic():
            n = Assignment.objects.filter(pk=assignment_id, status=Assignment.Status.LEASED).update(
                status=Assignment.Status.EXPIRED, updated_at=now
            )
            if n:
                QueueItem.objects.filter(pk=item_id).update(claimed=F("claimed") - 1)
                released += 1
    return released


def _lockable(qs: QuerySet[QueueItem]) -> QuerySet[QueueItem]:
    """Lock the rows we pick and skip rows another claimer holds (PostgreSQL).

    SQLite has no row locks; there every transaction begins IMMEDIATE, so claims run one at a time.
    """
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True, of=("self",))
    return qs


def _pick_item(*, rater: User, queue: Queue, gold: bool) -> QueueItem | None:
    seen = Assignment.objects.filter(rater=rater, item__queue=queue).values("item_id")
    qs = QueueItem.objects.filter(queue=queue, is_gold=gold, retired=False).exclude(pk__in=seen)
    if not gold:
        # Gold items are answered by every rater; real items stop at the overlap.
        qs = qs.filter(claimed__lt=queue.overlap)
    return _lockable(qs.order_by("-priority", "id")).select_related("comparison__prompt").first()


def _pick_requeued(*, rater: User, queue: Queue) -> Assignment | None:
    """A skipped-for-later item of this rater that still has room (skip policy ``later``)."""
    skipped = list(
        Assignment.objects.filter(
            rater=rater, item__queue=queue, status=Assignment.Status.SKIPPED, requeue=True
        ).values_list("pk", "item_id")
    )
    if not skipped:
        return None
    items = _lockable(
        QueueItem.objects.filter(pk__in=[i for _, i in skipped], retired=False, claimed__lt=queue.overlap)
    ).order_by("-priority", "id")
    item = items.select_related("comparison__prompt").first()
    if item is None:
        return None
    assignment = Assignment.objects.get(pk=next(pk for pk, i in skipped if i == item.pk))
    assignment.item = item
    return assignment


def rater_is_qualified(*, rater: User, queue: Queue) -> bool:
    """Has the rater passed the queue's qualification (gold) queue, if it has one?"""
    if queue.qualification_id is None:
        return True
    from labeling.selectors import rater_gold_accuracy

    answered, accuracy = rater_gold_accuracy(rater=rater, queue_id=queue.qualification_id)
    return answered >= queue.qualification_min_items and accuracy >= queue.qualification_min_accuracy


def assignment_claim_next(
    *,
    rater: User,
    queue: Queue,
    now: datetime | None = None,
    fresh: bool = False,
    rng: random.Random | None = None,
) -> Assignment | None:
    """Lease the next item of ``queue`` to ``rater``, or return None when nothing is left for them.

    Guarantees, also with many raters claiming at once:
    - a rater who holds an unexpired lease in this queue gets it back (a refresh never burns an
      item) unless ``fresh`` asks for another one, up to the queue's ``max_open_leases``; two
      concurrent claims by one rater are serialized by locking the rater's row;
    - a rater never gets an item they already judged, skipped or held (unique item/rater), except
      an item they skipped "for later", which comes back after everything else;
    - no item is leased or judged more than the queue's overlap: candidate items are locked with
      ``SELECT ... FOR UPDATE SKIP LOCKED`` in a fixed order (priority, id), so two raters never
      wait on or take the same slot, and ``claimed`` only grows under that lock;
    - gold items are mixed in at the queue's gold rate (any number of raters answer each one);
      a rater gets no gold once the real items are gone.
    """
    now = now or timezone.now()
    if queue.status != Queue.Status.ACTIVE:
        return None
    if not queue.members.filter(pk=rater.pk).exists():
        raise ApplicationError("You are not a member of this queue.", status_code=403)
    if not rater_is_qualified(rater=rater, queue=queue):
        raise ApplicationError(
            f"This queue needs a passed qualification in '{queue.qualification}' first.", status_code=403
        )
    assignments_expire(queue=queue, now=now)
    want_gold = queue.gold_rate > 0 and (rng or random).random() < queue.gold_rate
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=rater.pk).values_list("pk", flat=True).first()
        held = list(
            Assignment.objects.filter(
                rater=rater, item__queue=queue, status=Assignment.Status.LEASED, expires_at__gt=now
            )
            .select_related("item__comparison__prompt")
            .order_by("id")
        )
        if held and not fresh:
            return _attach(held[0], queue)
        if len(held) >= queue.max_open_leases:
            raise Conflict(f"You already hold {len(held)} open item(s) in this queue (the most allowed).")
        item = _pick_item(rater=rater, queue=queue, gold=want_gold)
        if want_gold and item is None:
            item = _pick_item(rater=rater, queue=queue, gold=False)
        if item is None:
            requeued = _pick_requeued(rater=rater, queue=queue)
            if requeued is None:
                return None
            QueueItem.objects.filter(pk=requeued.item.pk).update(claimed=F("claimed") + 1)
            requeued.status = Assignment.Status.LEASED
            requeued.requeue = False
            requeued.shown_order = _shown_order(requeued.item)
            requeued.expires_at = now + timedelta(seconds=queue.lease_seconds)
            requeued.save(update_fields=["status", "requeue", "shown_order", "expires_at", "updated_at"])
            return _attach(requeued, queue)
        QueueItem.objects.filter(pk=item.pk).update(claimed=F("claimed") + 1)
        assignment = Assignment.objects.create(
            item=item,
            rater=rater,
            shown_order=_shown_order(item),
            expires_at=now + timedelta(seconds=queue.lease_seconds),
        )
    return _attach(assignment, queue)


def _attach(assignment: Assignment, queue: Queue) -> Assignment:
    # The caller's queue row (with its rubric) saves a query when the payload is built.
    assignment.item.queue = queue
    return assignment


def assignment_claim_next_any(*, rater: User, now: datetime | None = None) -> Assignment | None:
    """The next item from the rater's queues, highest queue priority first."""
    for queue in Queue.objects.filter(members=rater, status=Queue.Status.ACTIVE).select_related("rubric"):
        try:
            assignment = assignment_claim_next(rater=rater, queue=queue, now=now)
        except ApplicationError:
            continue  # not qualified yet: try the next queue
        if assignment is not None:
            return assignment
    return None


def assignment_skip(*, assignment: Assignment, reason: str = "") -> Assignment:
    """Give the item back, as the queue's skip policy says. Idempotent; a judged item cannot be skipped.

    ``others``: the slot goes to other raters, never back to this one. ``later``: also back to this
    rater once everything else is done. ``retire``: the item is withdrawn for everyone.
    """
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().select_related("item__queue").get(pk=assignment.pk)
        if locked.status == Assignment.Status.SUBMITTED:
            raise Conflict("This item is already judged; it cannot be skipped.")
        if locked.status == Assignment.Status.SKIPPED:
            return locked
        policy = locked.item.queue.skip_policy
        if locked.status == Assignment.Status.LEASED:
            QueueItem.objects.filter(pk=locked.item_id).update(claimed=F("claimed") - 1)
        if policy == Queue.SkipPolicy.RETIRE:
            QueueItem.objects.filter(pk=locked.item_id).update(retired=True)
        locked.status = Assignment.Status.SKIPPED
        locked.requeue = policy == Queue.SkipPolicy.LATER
        locked.skip_reason = reason[:500]
        locked.save(update_fields=["status", "requeue", "skip_reason", "updated_at"])
    return locked


# ----------------------------------------------------------------------------- judgments


def _validate_preference(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -3 <= value <= 3:
        raise ApplicationError(
            f"{field}: must be an integer from -3 (A much better) to 3 (B much better)", field=field
        )
    return value


def _validate_ranking(value: Any, labels: list[str]) -> list[list[str]]:
    if not isinstance(value, list) or not all(isinstance(g, list) and g for g in value):
        raise ApplicationError(
            "ranking: must be a list of non-empty groups of labels, best first", field="ranking"
        )
    flat = [label for group in value for label in group]
    if sorted(flat) != sorted(labels) or len(set(flat)) != len(flat):
        raise ApplicationError(
            f"ranking: must place each of {', '.join(labels)} exactly once", field="ranking"
        )
    return value


def _validate_criteria(rubric: Rubric, answers: Any, labels: list[str]) -> dict[str, Any]:
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        raise ApplicationError("criteria: must be an object keyed by criterion", field="criteria")
    criteria = {c.key: c for c in rubric.criteria.all()}
    for key in answers:
        if key not in criteria:
            raise ApplicationError(f"criteria.{key}: not in rubric {rubric}", field=f"criteria.{key}")
    clean: dict[str, Any] = {}
    for key, criterion in criteria.items():
        field = f"criteria.{key}"
        value = answers.get(key)
        if value is None or value == "" or value == {}:
            if criterion.required:
                raise ApplicationError(f"{field}: required ({criterion.question})", field=field)
            continue
        if criterion.kind == Criterion.Kind.PREFERENCE:
            clean[key] = _validate_preference(value, field)
        elif criterion.kind == Criterion.Kind.LIKERT:
            if not isinstance(value, dict) or set(value) - set(labels):
                raise ApplicationError(f"{field}: must map response labels to 1..7", field=field)
            for label, score in value.items():
                if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 7:
                    raise ApplicationError(
                        f"{field}.{label}: must be an integer 1..7", field=f"{field}.{label}"
                    )
            clean[key] = value
        elif criterion.kind == Criterion.Kind.FLAG:
            if not isinstance(value, bool):
                raise ApplicationError(f"{field}: must be true or false", field=field)
            clean[key] = value
        else:
            if not isinstance(value, str):
                raise ApplicationError(f"{field}: must be text", field=field)
            clean[key] = value[:10000]
    return clean


def judgment_submit(
    *,
    assignment: Assignment,
    preference: Any = None,
    ranking: Any = None,
    criteria: Any = None,
    flags: Any = None,
    rationale: str = "",
    rewrite: str = "",
    active_seconds: float | None = None,
    now: datetime | None = None,
) -> tuple[Judgment, bool]:
    """Record the rater's judgment. Returns (judgment, created).

    Idempotent: a double click, retry or replay returns the stored judgment with created=False.
    A lease that ran out is still accepted while the item has room (its slot is taken again);
    otherwise it is refused with a Conflict and nothing is written.
    """
    now = now or timezone.now()
    queue = assignment.item.queue
    labels = list(LABELS[: len(assignment.shown_order)])
    existing = Judgment.objects.filter(assignment=assignment).first()
    if existing is not None:
        return existing, False
    if queue.kind == Queue.Kind.PAIRWISE:
        if preference is None:
            raise ApplicationError("preference: required for a pairwise item (-3..3)", field="preference")
        preference = _validate_preference(preference, "preference")
        ranking = None
    else:
        if ranking is None:
            raise ApplicationError("ranking: required for a ranking item", field="ranking")
        ranking = _validate_ranking(ranking, labels)
        preference = None
    clean_criteria = _validate_criteria(queue.rubric, criteria, labels)
    if flags is None:
        flags = []
    if not isinstance(flags, list) or not all(isinstance(f, str) and f for f in flags):
        raise ApplicationError("flags: must be a list of flag names", field="flags")
    if active_seconds is not None and (not isinstance(active_seconds, int | float) or active_seconds < 0):
        raise ApplicationError("active_seconds: must be a non-negative number", field="active_seconds")

    try:
        with transaction.atomic():
            locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
            existing = Judgment.objects.filter(assignment=locked).first()
            if existing is not None:
                return existing, False
            if locked.status == Assignment.Status.SKIPPED:
                raise Conflict("You skipped this item; it can no longer be judged.")
            if locked.status == Assignment.Status.EXPIRED:
                # The lease was released; take a slot again if one is free.
                retaken = QueueItem.objects.filter(pk=locked.item_id, claimed__lt=queue.overlap).update(
                    claimed=F("claimed") + 1
                )
                if not retaken:
                    raise Conflict(
                        "Your lease on this item expired and it has since been judged by enough raters."
                    )
            judgment = Judgment.objects.create(
                assignment=locked,
                rubric=queue.rubric,
                preference=preference,
                ranking=ranking,
                criteria=clean_criteria,
                flags=sorted(set(flags)),
                rationale=(rationale or "")[:20000],
                rewrite=(rewrite or "")[:50000],
                active_seconds=active_seconds,
            )
            locked.status = Assignment.Status.SUBMITTED
            locked.save(update_fields=["status", "updated_at"])
            QueueItem.objects.filter(pk=locked.item_id).update(judged=F("judged") + 1)
            if not queue.rubric.frozen:
                Rubric.objects.filter(pk=queue.rubric_id).update(frozen=True)
            if queue.pairing == Queue.Pairing.ADAPTIVE:
                prompt_id = locked.item.comparison.prompt_id
                transaction.on_commit(lambda: queue_reprioritize(queue=queue, prompt_ids=[prompt_id]))
    except IntegrityError:
        # A concurrent replay won the race on the one-to-one key: return what it stored.
        return Judgment.objects.get(assignment=assignment), False
    return judgment, True


# ------------------------------------------------------------------------ adaptive pairing


def queue_reprioritize(*, queue: Queue, prompt_ids: Iterable[int] | None = None) -> int:
    """Adaptive pairing: order a pairwise queue's items by how uncertain their comparison is.

    Per prompt, a Bradley-Terry fit over the judgments so far scores each candidate; an item's
    priority grows as its two candidates' scores get closer and shrinks with every judgment it
    has. Claims take the highest priority first. Rows are updated in id order, so concurrent
    runs wait on each other instead of deadlocking. Returns how many items changed.
    """
    from labeling.ratings import bradley_terry, pair_uncertainty_priority
    from labeling.selectors import comparison_orders, preference_in_positions

    items = QueueItem.objects.filter(queue=queue, is_gold=False).select_related("comparison")
    if prompt_ids is not None:
        items = items.filter(comparison__prompt_id__in=list(prompt_ids))
    item_list = list(items.order_by("id"))
    orders = comparison_orders([i.comparison_id for i in item_list])
    judged = Judgment.objects.filter(assignment__item__in=item_list, preference__isnull=False).values_list(
        "preference", "assignment__shown_order", "assignment__item__comparison_id"
    )
    outcomes: dict[int, list[tuple[int, int, float]]] = {}
    counts: dict[int, int] = {}
    prompt_of = {i.comparison_id: i.comparison.prompt_id for i in item_list}
    for preference, shown, comparison_id in judged:
        first, second = orders[comparison_id][:2]
        p = preference_in_positions(
            preference=preference or 0, shown_order=shown, canonical=orders[comparison_id]
        )
        score = 0.5 if p == 0 else (1.0 if p < 0 else 0.0)
        outcomes.setdefault(prompt_of[comparison_id], []).append((first, second, score))
        counts[comparison_id] = counts.get(comparison_id, 0) + 1
    scores: dict[int, dict[Any, float]] = {}
    changed = []
    for item in item_list:
        prompt_id = item.comparison.prompt_id
        if prompt_id not in scores:
            players = {
                c for i in item_list if i.comparison.prompt_id == prompt_id for c in orders[i.comparison_id]
            }
            scores[prompt_id] = bradley_terry(outcomes.get(prompt_id, []), players=players)
        first, second = orders[item.comparison_id][:2]
        gap = scores[prompt_id][first] - scores[prompt_id][second]
        priority = pair_uncertainty_priority(gap, counts.get(item.comparison_id, 0))
        if priority != item.priority:
            item.priority = priority
            changed.append(item)
    with transaction.atomic():
        QueueItem.objects.bulk_update(changed, ["priority"], batch_size=500)
    return len(changed)
