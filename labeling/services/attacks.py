"""Attacks enter review: the one function that creates an ``Attack`` (from a red-team session's
verdict, an adversary exchange, an imported conversation or a test-set replay).

Status changes after creation (confirm / reject) belong to ``labeling.services.redteam_reviews``.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from comparisons.models import Candidate, Prompt
from labeling.audit import audit_record
from labeling.errors import ApplicationError
from labeling.models import (
    AdversaryJob,
    Attack,
    HarmCategory,
    Outcome,
    Queue,
    RedteamEvalRun,
    Session,
    Tactic,
    Turn,
    User,
)
from labeling.refusal import refusal_score
from model_runner.models import Generator

MAX_DESCRIPTION = 5_000
MAX_IDEAL_REPLY = 20_000


def harm_category_check(value: Any, *, field: str = "category", allow_blank: bool = False) -> str:
    """A HarmCategory key that exists (active or not), else a 400 naming ``field``."""
    if allow_blank and value in (None, ""):
        return ""
    keys = list(HarmCategory.objects.values_list("key", flat=True))
    if not isinstance(value, str) or value not in keys:
        raise ApplicationError(f"{field}: must be one of {', '.join(keys)}", field=field)
    return value


def attack_labels_check(
    *,
    outcome: Any = "",
    category: Any = "",
    tactic: Any = "",
    severity: Any = None,
    allow_blank: bool = True,
) -> dict[str, Any]:
    """Validated red-team labels (outcome, category, tactic, severity 1..5); 400s name the field."""
    labels: dict[str, Any] = {}
    for field, value, choices in (("outcome", outcome, Outcome.values), ("tactic", tactic, Tactic.values)):
        if allow_blank and value in (None, ""):
            labels[field] = ""
        elif not isinstance(value, str) or value not in choices:
            raise ApplicationError(f"{field}: must be one of {', '.join(choices)}", field=field)
        else:
            labels[field] = value
    labels["category"] = harm_category_check(category, allow_blank=allow_blank)
    if allow_blank and severity in (None, ""):
        labels["severity"] = None
    elif isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ApplicationError("severity: must be an integer from 1 (mild) to 5 (severe)", field="severity")
    else:
        labels["severity"] = severity
    return labels


def attack_create(
    *,
    queue: Queue,
    source: str,
    prompt: Prompt,
    reply: Candidate | None,
    family: str,
    target: Generator | None = None,
    author: User | None = None,
    session: Session | None = None,
    turn: Turn | None = None,
    adversary_job: AdversaryJob | None = None,
    eval_run: RedteamEvalRun | None = None,
    test_attack: Attack | None = None,
    outcome: str = "",
    category: str = "",
    tactic: str = "",
    severity: int | None = None,
    description: str = "",
    ideal_reply: str = "",
    feedback: dict[str, Any] | None = None,
    prescreen_floor: float = 0.0,
) -> Attack:
    """Put one attack into ``queue`` (a queue of kind ``redteam``) for review, pending.

    ``outcome`` is the claim (kept as ``claimed_outcome``); the pre-screen (``labeling.refusal``)
    scores the reply so likely successes are reviewed first; ``prescreen_floor`` raises that score
    (an import puts what users reported first). Nothing is written on a bad argument.
    """
    if queue.kind != Queue.Kind.REDTEAM:
        raise ApplicationError(f"queue: '{queue.name}' is not a red-team review queue", field="queue")
    if source not in Attack.Source.values:
        raise ApplicationError(f"source: must be one of {', '.join(Attack.Source.values)}", field="source")
    if not family:
        raise ApplicationError("family: an attack needs a family (its split key)", field="family")
    if len(description) > MAX_DESCRIPTION:
        raise ApplicationError(f"description: at most {MAX_DESCRIPTION} characters", field="description")
    if len(ideal_reply) > MAX_IDEAL_REPLY:
        raise ApplicationError(f"ideal_reply: at most {MAX_IDEAL_REPLY} characters", field="ideal_reply")
    labels = attack_labels_check(outcome=outcome, category=category, tactic=tactic, severity=severity)
    with transaction.atomic():
        attack = Attack.objects.create(
            queue=queue,
            source=source,
            prompt=prompt,
            reply=reply,
            target=target if target is not None else (reply.generator if reply is not None else None),
            author=author,
            session=session,
            turn=turn,
            adversary_job=adversary_job,
            eval_run=eval_run,
            test_attack=test_attack,
            family=family[:200],
            claimed_outcome=labels["outcome"],
            description=description,
            ideal_reply=ideal_reply,
            feedback=feedback or {},
            prescreen=max(prescreen_floor, refusal_score(reply.text if reply is not None else "")),
            **labels,
        )
        audit_record(
            "attack.create",
            target=attack,
            actor=author,
            changes={"source": source, "queue": queue.pk, "outcome": labels["outcome"]},
        )
    return attack
