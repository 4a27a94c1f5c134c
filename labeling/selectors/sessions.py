"""Reads of conversation sessions. A trainer reaches a session only through
``session_get_for_trainer`` (their own, else 404) and a template only as a member."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from comparisons.models import Candidate
from labeling.errors import id_or_none
from labeling.models import Queue, Session, SessionTemplate, Turn, User
from labeling.selectors.assignments import LABELS
from labeling.selectors.queues import rubric_criteria
from labeling.selectors.redteam_sessions import session_redteam_payload


def session_templates_for_user(*, user: User) -> QuerySet[Queue]:
    """The active conversation queues the user is a member of (the templates they may start)."""
    return (
        Queue.objects.filter(kind=Queue.Kind.CONVERSATION, status=Queue.Status.ACTIVE, members=user)
        .select_related("template", "rubric")
        .order_by("-priority", "id")
    )


def session_template_get_for_user(*, user: User, queue_id: Any) -> Queue:
    """A template the user may start a session of, or 404 (as for a queue that does not exist)."""
    pk = id_or_none(queue_id, Queue._meta.pk)
    queue = session_templates_for_user(user=user).filter(pk=pk).first() if pk is not None else None
    if queue is None:
        raise Http404("No such conversation queue.")
    return queue


def session_list_for_trainer(*, trainer: User) -> QuerySet[Session]:
    return Session.objects.filter(trainer=trainer).select_related("queue").order_by("-updated_at", "-id")


def session_get_for_trainer(*, trainer: User, session_id: Any) -> Session:
    """The one way to fetch a session for a trainer: their own, or 404."""
    pk = id_or_none(session_id, Session._meta.pk)
    session = (
        Session.objects.select_related("queue__template", "queue__rubric")
        .filter(pk=pk, trainer=trainer)
        .first()
        if pk is not None
        else None
    )
    if session is None:
        raise Http404("No such session.")
    return session


def session_turn_get(*, session: Session, turn_id: Any) -> Turn:
    """A turn of this session, or 404."""
    pk = id_or_none(turn_id, Turn._meta.pk)
    turn = session.turns.filter(pk=pk).first() if pk is not None else None
    if turn is None:
        raise Http404("No such turn.")
    return turn


def session_branch(*, session: Session) -> list[Turn]:
    """The turns of the branch the session is on, first to last."""
    return list(
        session.turns.filter(abandoned=False)
        .select_related("assignment", "chosen__generator")
        .order_by("position", "id")
    )


def turn_retryable(turn: Turn, now: Any = None) -> bool:
    """Whether the trainer may ask again: the turn failed, or no worker answered it in time."""
    if turn.abandoned or turn.role != Turn.Role.ASSISTANT:
        return False
    if turn.status == Turn.Status.FAILED:
        return True
    stale = (now or timezone.now()) - timedelta(seconds=settings.PREFLAB_TURN_STALE_SECONDS)
    since = turn.claimed_at if turn.status == Turn.Status.GENERATING else turn.requested_at
    return (
        turn.status in (Turn.Status.PENDING, Turn.Status.GENERATING) and since is not None and since <= stale
    )


def turn_payload(turn: Turn) -> dict[str, Any]:
    """One turn as its trainer sees it: blind (labels in the shown order, never the generator)."""
    body: dict[str, Any] = {
        "id": turn.pk,
        "role": turn.role,
        "position": turn.position,
        "status": turn.status,
        "text": turn.text,
        "by_trainer": turn.by_trainer,
        "error": turn.error,
        "retryable": turn_retryable(turn),
        "alternatives": [],
        "assignment": None,
        "label": None,
    }
    assignment = turn.assignment
    if turn.status == Turn.Status.READY and assignment is not None:
        texts = dict(Candidate.objects.filter(pk__in=assignment.shown_order).values_list("pk", "text"))
        body["assignment"] = assignment.pk
        body["alternatives"] = [
            {"label": LABELS[i], "text": texts[cid]} for i, cid in enumerate(assignment.shown_order)
        ]
    return body


def session_payload(session: Session) -> dict[str, Any]:
    """A session with its branch, its template's settings a trainer needs, and its rubric; a
    red-team session adds its target, category, verdict and attacks, and each turn's ``label``."""
    template = session.queue.template
    rubric = session.queue.rubric
    branch = session_branch(session=session)
    said = sum(t.role == Turn.Role.USER for t in branch)
    last = branch[-1] if branch else None
    turns = [turn_payload(t) for t in branch]
    redteam: dict[str, Any] = {}
    if template.mode == SessionTemplate.Mode.REDTEAM:
        redteam = session_redteam_payload(session, branch)
        for turn in turns:
            turn["label"] = redteam["labels"].get(turn["id"])
        del redteam["labels"]
    return {
        "id": session.pk,
        "queue": session.queue_id,
        "mode": template.mode,
        "status": session.status,
        "title": session.title,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "turns_left": max(0, template.max_turns - said),
        "can_say": session.status == Session.Status.ACTIVE
        and said < template.max_turns
        and (last is None or (last.role == Turn.Role.ASSISTANT and last.status == Turn.Status.DONE)),
        "guidelines": session.queue.guidelines,
        "rubric": {
            "id": rubric.pk,
            "name": rubric.name,
            "version": rubric.version,
            "criteria": [
                {
                    "key": c.key,
                    "question": c.question,
                    "help_text": c.help_text,
                    "kind": c.kind,
                    "required": c.required,
                }
                for c in rubric_criteria(rubric)
            ],
        },
        "turns": turns,
        **redteam,
    }


def session_messages(session: Session, through: Turn) -> list[dict[str, str]]:
    """The conversation up to ``through`` on its branch, with the template's system prompt first."""
    chain: list[Turn] = []
    turn: Turn | None = through
    while turn is not None:
        chain.append(turn)
        turn = turn.parent
    system = session.queue.template.system_prompt
    messages = [{"role": "system", "content": system}] if system.strip() else []
    return messages + [{"role": t.role, "content": t.text} for t in reversed(chain)]
