"""The labeling models, one module per subject: ``accounts`` (users, API keys, the audit log),
``rubrics``, ``queues`` (queues and items), ``assignments`` (leases and judgments),
``sessions`` (conversations: templates, seeds, sessions and their turns) and ``reviews``
(rater pauses and adjudication)."""

from labeling.models.accounts import ApiKey, AuditEvent, ContentCategory, User
from labeling.models.assignments import Assignment, Judgment
from labeling.models.queues import Queue, QueueItem
from labeling.models.reviews import RaterQueuePause, Review
from labeling.models.rubrics import Criterion, Rubric
from labeling.models.sessions import Session, SessionSeed, SessionTemplate, Turn

__all__ = [
    "ApiKey",
    "Assignment",
    "AuditEvent",
    "ContentCategory",
    "Criterion",
    "Judgment",
    "Queue",
    "QueueItem",
    "RaterQueuePause",
    "Review",
    "Rubric",
    "Session",
    "SessionSeed",
    "SessionTemplate",
    "Turn",
    "User",
]
