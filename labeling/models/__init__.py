"""The labeling models, one module per subject: ``accounts`` (users, API keys, the audit log),
``rubrics``, ``queues`` (queues and items), ``assignments`` (leases and judgments),
``sessions`` (conversations: templates, seeds, sessions and their turns), ``reviews``
(rater pauses and adjudication), ``stats`` (the queue statistics' stored facts) and ``redteam``
(labels, attacks, the adversary, test runs)."""

from labeling.models.accounts import ApiKey, AuditEvent, ContentCategory, User
from labeling.models.assignments import Assignment, Judgment
from labeling.models.queues import Queue, QueueItem
from labeling.models.redteam import (
    AdversaryJob,
    Attack,
    AttackExposure,
    HarmCategory,
    Outcome,
    RedteamEvalRun,
    Tactic,
    TurnLabel,
)
from labeling.models.reviews import RaterQueuePause, Review
from labeling.models.rubrics import Criterion, Rubric
from labeling.models.sessions import Session, SessionSeed, SessionTemplate, Turn
from labeling.models.stats import JudgmentFact, JudgmentFactChunk, JudgmentFactsState

__all__ = [
    "AdversaryJob",
    "ApiKey",
    "Assignment",
    "Attack",
    "AttackExposure",
    "AuditEvent",
    "ContentCategory",
    "Criterion",
    "HarmCategory",
    "Judgment",
    "JudgmentFact",
    "JudgmentFactChunk",
    "JudgmentFactsState",
    "Outcome",
    "Queue",
    "QueueItem",
    "RaterQueuePause",
    "RedteamEvalRun",
    "Review",
    "Rubric",
    "Session",
    "SessionSeed",
    "SessionTemplate",
    "Tactic",
    "Turn",
    "TurnLabel",
    "User",
]
