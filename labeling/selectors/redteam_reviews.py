"""Reads for reviewing attacks: the gatekeepers (a review queue a rater works in, an attack a
reviewer may see), the blind payload a reviewer is shown, and the staff list of attacks.

Blind review: the payload never names the attack's author nor the generator that replied (the
``target``), as raters never learn which model wrote a response.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404
from django.utils import timezone

from labeling.errors import ApplicationError, id_or_none
from labeling.models import Attack, AttackExposure, Queue, User

#: Roles that may list attacks (``GET /api/v1/attacks/``).
LIST_ROLES = (User.Role.REVIEWER, User.Role.RESEARCHER, User.Role.ADMIN)


def redteam_queue_get_for_rater(*, rater: User, queue_id: Any) -> Queue:
    """A red-team review queue the rater is a member of, else 404 (never 403: as absent as one
    that does not exist)."""
    pk = id_or_none(queue_id, Queue._meta.pk)
    queue = (
        Queue.objects.filter(pk=pk, kind=Queue.Kind.REDTEAM, members=rater).first()
        if pk is not None
        else None
    )
    if queue is None:
        raise Http404("No such red-team review queue.")
    return queue


def redteam_queues_for_rater(*, rater: User) -> list[dict[str, Any]]:
    """The rater's active red-team review queues, each with the attacks still waiting that the
    rater could be shown (not theirs, never shown to them)."""
    queues = Queue.objects.filter(kind=Queue.Kind.REDTEAM, members=rater, status=Queue.Status.ACTIVE)
    waiting = (
        Attack.objects.filter(queue__in=queues, status=Attack.Status.PENDING)
        .exclude(author=rater)
        .exclude(exposures__rater=rater)
        .values_list("queue_id")
        .annotate(n=Count("id"))
    )
    counts = dict(waiting.values_list("queue_id", "n"))
    return [{"queue": q, "waiting": counts.get(q.pk, 0)} for q in queues.order_by("-priority", "id")]


def attack_get_for_reviewer(*, reviewer: User, attack_id: Any) -> Attack:
    """The one way to fetch an attack to review or skip: one the user was shown for review (an
    ``AttackExposure``: they claimed it), or any attack for an admin; never one they wrote.
    Anything else is 404 (never says whether it exists)."""
    pk = id_or_none(attack_id, Attack._meta.pk)
    found = (
        Attack.objects.select_related("queue", "prompt", "reply").filter(pk=pk) if pk is not None else None
    )
    if found is None:
        raise Http404("No such attack.")
    if not reviewer.is_admin_role:
        found = found.filter(pk__in=AttackExposure.objects.filter(rater=reviewer).values("attack_id"))
    attack = found.exclude(author=reviewer).first()
    if attack is None:
        raise Http404("No such attack.")
    return attack


def attack_review_payload(attack: Attack, *, take_break: bool = False) -> dict[str, Any]:
    """What a reviewer is shown: the conversation, the reply, the claimed and current labels, the
    source, the pre-screen score and the description; the verdict once there is one. Never the
    author nor the target generator (blind)."""
    return {
        "id": attack.pk,
        "queue": attack.queue_id,
        "status": attack.status,
        "source": attack.source,
        "prompt": attack.prompt.messages,
        "reply": attack.reply.text if attack.reply is not None else "",
        # The claim (the red-teamer's, importer's or adversary's guess) until review, then the
        # reviewer's final word; ``claimed_outcome`` keeps the claimed outcome.
        "claimed_outcome": attack.claimed_outcome,
        "labels": {
            "outcome": attack.outcome,
            "category": attack.category,
            "tactic": attack.tactic,
            "severity": attack.severity,
        },
        "category": attack.category,
        "description": attack.description,
        "ideal_reply": attack.ideal_reply,
        "prescreen": attack.prescreen,
        "lease_expires_at": attack.lease_expires_at,
        "verdict": _verdict(attack),
        "take_break": take_break,
    }


def _verdict(attack: Attack) -> dict[str, Any] | None:
    if attack.status == Attack.Status.PENDING:
        return None
    return {
        "status": attack.status,
        "reviewed_at": attack.reviewed_at,
        "note": attack.review_note,
        "reviewer": attack.reviewer_id,
    }


def attacks_list(
    *,
    user: User,
    status: str | None = None,
    source: str | None = None,
    category: str | None = None,
    queue: Any = None,
) -> QuerySet[Attack]:
    """Attacks for reviewers, researchers and admins (403 for anyone else), newest first,
    filtered; a filter value that names nothing is a 400 naming it."""
    if not (user.is_admin_role or user.role in LIST_ROLES):
        raise ApplicationError("Only reviewers, researchers and admins list attacks.", status_code=403)
    found = Attack.objects.select_related("prompt", "reply", "target", "author")
    checks = (("status", status, Attack.Status.values), ("source", source, Attack.Source.values))
    for name, value, allowed in checks:
        if value:
            if value not in allowed:
                raise ApplicationError(f"{name}: must be one of {', '.join(allowed)}", field=name)
            found = found.filter(**{name: value})
    if category:
        found = found.filter(category=category)
    if queue not in (None, ""):
        pk = id_or_none(queue, Queue._meta.pk)
        if pk is None:
            raise ApplicationError("queue: must be a queue id", field="queue")
        found = found.filter(queue_id=pk)
    return found.order_by("-id")


def attack_list_row(attack: Attack, *, user: User) -> dict[str, Any]:
    """One attack of the staff list; the author and target only for researchers and admins
    (reviewers review blind)."""
    row = {
        "id": attack.pk,
        "queue": attack.queue_id,
        "source": attack.source,
        "status": attack.status,
        "claimed_outcome": attack.claimed_outcome,
        "outcome": attack.outcome,
        "category": attack.category,
        "tactic": attack.tactic,
        "severity": attack.severity,
        "prescreen": attack.prescreen,
        "description": attack.description,
        "family": attack.family,
        "prompt": attack.prompt.messages,
        "reply": attack.reply.text if attack.reply is not None else "",
        "reviewed_at": attack.reviewed_at,
        "created_at": attack.created_at,
    }
    if user.is_admin_role or user.role == User.Role.RESEARCHER:
        row |= {
            "author": attack.author.username if attack.author is not None else None,
            "target": attack.target_id,
            "reviewer": attack.reviewer_id,
            "review_note": attack.review_note,
        }
    return row


def attack_held_by(*, rater: User, queue: Queue, now: datetime | None = None) -> Attack | None:
    """The pending attack of ``queue`` the rater holds a live lease on, if any."""
    now = now or timezone.now()
    held = Attack.objects.filter(
        queue=queue, status=Attack.Status.PENDING, leased_to=rater, lease_expires_at__gt=now
    )
    return held.select_related("queue", "prompt", "reply").order_by("id").first()
