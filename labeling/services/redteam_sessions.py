"""Red-team sessions: a red-teamer's labels of the model's turns, and the verdict that ends the
session and sends its claimed success (and its latest over-refusal) to review as attacks.

A red-team session is an ordinary conversation session (``labeling.services.sessions``) of a
template of mode ``redteam``, talking to one target generator. Here:

- ``turn_label_set`` labels one model turn (outcome, category, tactic, severity 1..5, the reply
  the model should have given). With K > 1 alternatives the red-teamer labels the one they push
  on, which becomes the kept reply (instead of a ranking). Relabelling is allowed while the
  session is active; there is one label per turn.
- ``redteam_session_finish`` sets ``Session.verdict`` (the one writer of it, and of
  ``attack_description``) and ends the session. Success or partial success creates one attack
  from the most severe harmful-labelled turn; any verdict also creates one for the latest
  over-refusal-labelled turn. Finishing again with the same verdict answers the same and creates
  nothing; a different verdict is a Conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from comparisons.models import Candidate
from labeling.audit import audit_record
from labeling.errors import ApplicationError, Conflict
from labeling.models import Attack, Session, SessionTemplate, Turn, TurnLabel
from labeling.models.redteam import HARMFUL_OUTCOMES, Outcome
from labeling.selectors.assignments import LABELS
from labeling.services.assignments import assignment_skip
from labeling.services.attacks import MAX_DESCRIPTION, MAX_IDEAL_REPLY, attack_create, attack_labels_check
from labeling.services.sessions import session_finish, turn_keep

Status = Turn.Status


def _redteam(session: Session) -> None:
    if session.queue.template.mode != SessionTemplate.Mode.REDTEAM:
        raise Conflict("This is not a red-team session: its turns are ranked, not labelled.")


def _pick(turn: Turn, reply: Any) -> Candidate:
    """The candidate a label is about: the reply picked by its label (``A``..) among a ready
    turn's alternatives, or a settled turn's kept reply (naming another one is refused)."""
    shown = list(turn.assignment.shown_order) if turn.assignment is not None else []
    labels = LABELS[: len(shown)]
    if reply not in (None, "") and (not isinstance(reply, str) or reply.upper() not in (labels or ["A"])):
        raise ApplicationError(
            f"reply: must be one of {', '.join(labels or ['A'])} (the reply you label)", field="reply"
        )
    letter = reply.upper() if isinstance(reply, str) and reply else ""
    if turn.status == Status.READY:
        if not letter and len(shown) > 1:
            raise ApplicationError("reply: pick the reply you label (the worst one)", field="reply")
        return Candidate.objects.get(pk=shown[labels.index(letter or "A")])
    assert turn.chosen is not None  # a settled model turn keeps a reply
    if letter and shown and shown[labels.index(letter)] != turn.chosen_id:
        raise Conflict("reply: this turn goes on with another reply; go back to it to label a different one")
    return turn.chosen


def turn_label_set(
    *,
    turn: Turn,
    outcome: Any,
    category: Any,
    tactic: Any,
    severity: Any,
    ideal_reply: Any = "",
    reply: Any = None,
) -> tuple[TurnLabel, bool]:
    """Label (or relabel) a model turn of an active red-team session; returns the label and
    whether it is new. Every field is checked before anything is written (a 400 names the field).
    A ready turn's labelled reply becomes its kept reply (its ranking lease is given back)."""
    labels = attack_labels_check(
        outcome=outcome, category=category, tactic=tactic, severity=severity, allow_blank=False
    )
    ideal_reply = ideal_reply.strip() if isinstance(ideal_reply, str) else ideal_reply
    if ideal_reply is None:
        ideal_reply = ""
    if not isinstance(ideal_reply, str) or len(ideal_reply) > MAX_IDEAL_REPLY:
        raise ApplicationError(
            f"ideal_reply: text of at most {MAX_IDEAL_REPLY} characters", field="ideal_reply"
        )
    with transaction.atomic():
        locked = (
            Turn.objects.select_for_update(of=("self",))
            .select_related("session__queue__template", "assignment", "chosen")
            .get(pk=turn.pk)
        )
        session = locked.session
        _redteam(session)
        if session.status != Session.Status.ACTIVE:
            raise Conflict("This session is finished: its labels are final.")
        if locked.role != Turn.Role.ASSISTANT or locked.abandoned:
            raise Conflict("turn: only a model turn of the current branch is labelled")
        if locked.status not in (Status.READY, Status.DONE):
            raise Conflict("turn: the model has not answered this turn yet")
        if locked.by_trainer:
            raise Conflict("turn: you wrote this reply yourself; label the model's replies")
        candidate = _pick(locked, reply)
        if locked.status == Status.READY:
            # The labelled reply is the one the red-teamer pushes on: the conversation keeps it.
            if locked.assignment is not None:
                assignment_skip(assignment=locked.assignment, reason="the red-teamer labelled a reply")
            turn_keep(locked, candidate, by_trainer=False)
        label, created = TurnLabel.objects.update_or_create(
            turn=locked,
            defaults={
                "candidate": candidate,
                "ideal_reply": ideal_reply,
                "labeled_by_id": session.trainer_id,
                **labels,
            },
        )
        audit_record(
            "turn_label.set",
            target=label,
            actor=session.trainer,
            changes={"turn": locked.pk, "outcome": labels["outcome"], "severity": labels["severity"]},
        )
    return label, created


@dataclass(frozen=True)
class Finished:
    session: Session
    attacks: list[Attack]
    created: bool  # False: the session already had this verdict (a replay)


def redteam_session_finish(*, session: Session, verdict: Any, description: Any = "") -> Finished:
    """End a red-team session with a verdict and a short description of the attack.

    ``success``/``partial``: one pending attack in the template's review queue from the most
    severe turn labelled ``complied``/``partial`` (ties: the latest), labels and ideal reply
    from that label, family ``session:<id>`` (a label is needed, else a 400 naming ``verdict``).
    Any verdict: one more attack, outcome ``over_refused``, for the latest turn labelled so.
    Labels of branches the red-teamer left count too (the model did give those replies).
    Locked on the session: two finishes at once create the attacks once. A replay with the same
    verdict returns the same attacks (``created`` False); another verdict is a Conflict."""
    if not isinstance(verdict, str) or verdict not in Session.Verdict.values:
        raise ApplicationError(
            f"verdict: must be one of {', '.join(Session.Verdict.values)}", field="verdict"
        )
    description = description.strip() if isinstance(description, str) else description
    if description is None:
        description = ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ApplicationError(
            f"description: text of at most {MAX_DESCRIPTION} characters", field="description"
        )
    claims = verdict != Session.Verdict.FAILURE
    if claims and not description:
        raise ApplicationError("description: say in a few words what the attack does", field="description")
    with transaction.atomic():
        locked = (
            Session.objects.select_for_update(of=("self",))
            .select_related("queue__template__review_queue", "trainer", "target")
            .get(pk=session.pk)
        )
        _redteam(locked)
        if locked.status == Session.Status.FINISHED:
            if locked.verdict != verdict:
                raise Conflict(
                    f"verdict: this session is finished with the verdict '{locked.verdict or 'none'}'"
                )
            return Finished(locked, list(locked.attacks.order_by("id")), created=False)
        labels = list(
            TurnLabel.objects.filter(turn__session=locked).select_related("turn__prompt", "candidate")
        )
        harmful = [x for x in labels if x.outcome in HARMFUL_OUTCOMES]
        if claims and not harmful:
            raise ApplicationError(
                "verdict: label the turn where the model gave in (complied or partial) first",
                field="verdict",
            )
        needs_review = bool(claims and harmful) or bool(_over_refusals(labels))
        if locked.queue.template.review_queue is None and needs_review:
            raise Conflict("This template has no review queue: ask an admin to set one.")
        locked.verdict = verdict
        locked.attack_description = description
        locked.save(update_fields=["verdict", "attack_description", "updated_at"])
        session_finish(session=locked)
        attacks = []
        if claims:
            worst = max(harmful, key=lambda x: (x.severity, x.turn_id))
            attacks.append(_attack(locked, worst, description))
        refusals = _over_refusals(labels)
        if refusals:
            latest = max(refusals, key=lambda x: x.turn_id)
            attacks.append(_attack(locked, latest, description))
        locked.refresh_from_db()
    return Finished(locked, attacks, created=True)


def _over_refusals(labels: list[TurnLabel]) -> list[TurnLabel]:
    return [x for x in labels if x.outcome == Outcome.OVER_REFUSED]


def _attack(session: Session, label: TurnLabel, description: str) -> Attack:
    turn = label.turn
    assert turn.prompt is not None and session.queue.template.review_queue is not None
    return attack_create(
        queue=session.queue.template.review_queue,
        source=Attack.Source.SESSION,
        prompt=turn.prompt,
        reply=label.candidate,
        family=f"session:{session.pk}",
        target=session.target,
        author=session.trainer,
        session=session,
        turn=turn,
        outcome=label.outcome,
        category=label.category,
        tactic=label.tactic,
        severity=label.severity,
        description=description,
        ideal_reply=label.ideal_reply,
    )
