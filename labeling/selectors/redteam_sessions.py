"""Reads of red-team sessions: the red-team templates a user may start, their sessions, and what
a red-team session adds to a session's payload (target, category, verdict, its attacks, and each
model turn's label). A session itself is reached only through ``session_get_for_trainer``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet

from labeling.models import HarmCategory, Queue, Session, SessionTemplate, Turn, TurnLabel, User
from labeling.selectors.assignments import LABELS


def redteam_templates_for_user(*, user: User) -> QuerySet[Queue]:
    """The active red-team conversation queues the user is a member of, with their generators."""
    return (
        Queue.objects.filter(
            kind=Queue.Kind.CONVERSATION,
            status=Queue.Status.ACTIVE,
            members=user,
            template__mode=SessionTemplate.Mode.REDTEAM,
        )
        .select_related("template", "rubric")
        .prefetch_related("template__generators")
        .order_by("-priority", "id")
    )


def redteam_sessions_for_trainer(*, trainer: User) -> QuerySet[Session]:
    return (
        Session.objects.filter(trainer=trainer, queue__template__mode=SessionTemplate.Mode.REDTEAM)
        .select_related("queue", "target")
        .order_by("-updated_at", "-id")
    )


def harm_categories_offered() -> list[HarmCategory]:
    """The categories offered for new labels and sessions (active ones, in their order)."""
    return list(HarmCategory.objects.filter(active=True).order_by("position", "key"))


def harm_category_labels() -> dict[str, str]:
    """Every category's label by key (old labels may name an inactive one)."""
    return dict(HarmCategory.objects.values_list("key", "label"))


def turn_label_payload(label: TurnLabel, turn: Turn) -> dict[str, Any]:
    """A turn's label as its red-teamer sees it; ``reply`` is the labelled reply's letter."""
    shown = list(turn.assignment.shown_order) if turn.assignment is not None else []
    reply = LABELS[shown.index(label.candidate_id)] if label.candidate_id in shown else "A"
    return {
        "reply": reply,
        "outcome": label.outcome,
        "category": label.category,
        "tactic": label.tactic,
        "severity": label.severity,
        "ideal_reply": label.ideal_reply,
        "updated_at": label.updated_at,
    }


def session_redteam_payload(session: Session, branch: Sequence[Turn]) -> dict[str, Any]:
    """What a red-team session adds to ``session_payload``: its target (the red-teamer chose it,
    so it is not hidden from them), category, verdict, attacks, and the labels of its turns by
    turn id."""
    labels = TurnLabel.objects.filter(turn__in=[t.pk for t in branch if t.role == Turn.Role.ASSISTANT])
    by_turn = {t.pk: t for t in branch}
    return {
        "target": {"id": session.target_id, "name": session.target.name} if session.target else None,
        "category": session.category,
        "verdict": session.verdict,
        "attack_description": session.attack_description,
        "attacks": [
            {"id": pk, "status": status, "outcome": outcome}
            for pk, status, outcome in session.attacks.order_by("id").values_list("pk", "status", "outcome")
        ],
        "labels": {label.turn_id: turn_label_payload(label, by_turn[label.turn_id]) for label in labels},
    }
