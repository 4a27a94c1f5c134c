"""Reads of the safe-reply requests: which confirmed attacks still need a safe reply ranked by
raters, and which requests were made (``labeling.services.redteam_safe_replies`` writes them).

A request is recorded as one audit event (action :data:`SAFE_REPLIES_ACTION`, target the ranking
queue, ``changes`` holding the job, the generator, K and the prompt and attack ids). The audit log
is append-only, so a request, once made, is never lost or changed: it is the record that a prompt
was asked for, which keeps a second request from asking again.
"""

from __future__ import annotations

from dataclasses import dataclass

from labeling.models import Attack, AuditEvent
from labeling.models.redteam import HARMFUL_OUTCOMES
from labeling.selectors.redteam import attacks_on_side

SAFE_REPLIES_ACTION = "redteam.safe_replies_request"


@dataclass(frozen=True)
class SafeRepliesRequest:
    """One request: the ranking ``queue_id`` over ``prompt_ids``, filled from ``job_id``'s
    ``samples`` candidates per prompt by ``generator_id``."""

    queue_id: int
    job_id: int
    generator_id: int
    samples: int
    prompt_ids: tuple[int, ...]
    attack_ids: tuple[int, ...]


def safe_replies_requests() -> list[SafeRepliesRequest]:
    """Every request made, oldest first."""
    events = AuditEvent.objects.filter(action=SAFE_REPLIES_ACTION).order_by("id")
    found = []
    for object_id, changes in events.values_list("object_id", "changes"):
        found.append(
            SafeRepliesRequest(
                queue_id=int(object_id),
                job_id=int(changes["job"]),
                generator_id=int(changes["generator"]),
                samples=int(changes["samples"]),
                prompt_ids=tuple(int(p) for p in changes["prompts"]),
                attack_ids=tuple(int(a) for a in changes["attacks"]),
            )
        )
    return found


def safe_replies_requested_prompt_ids() -> set[int]:
    """The prompts some request already asked fresh candidates for."""
    return {pid for request in safe_replies_requests() for pid in request.prompt_ids}


def attacks_needing_safe_replies(*, category: str | None = None) -> list[Attack]:
    """Confirmed training-side attacks with a harmful outcome (complied, partial), no written
    ideal reply, and no request made yet for their prompt; by id."""
    requested = safe_replies_requested_prompt_ids()
    return [
        a
        for a in attacks_on_side(side="train", category=category)
        if a.outcome in HARMFUL_OUTCOMES and not a.ideal_reply.strip() and a.prompt_id not in requested
    ]
