"""Writes for labeling, one module per entity: users, rubrics, queues, assignments, judgments.

Lock order, everywhere: rater row -> assignment row -> queue item row. Keeping one order is
what keeps concurrent claims, submits, skips and lease expiry free of deadlocks on PostgreSQL.
On SQLite every transaction starts IMMEDIATE (see settings), which serializes writers.
"""

from labeling.services.adaptive import queue_reprioritize
from labeling.services.assignments import (
    assignment_claim_next,
    assignment_claim_next_any,
    assignment_skip,
    assignments_expire,
    rater_is_qualified,
)
from labeling.services.judgments import judgment_submit
from labeling.services.queues import (
    QUEUE_SETTINGS,
    queue_add_comparisons,
    queue_add_gold,
    queue_add_prompts,
    queue_create,
)
from labeling.services.rubrics import rubric_create, rubric_new_version
from labeling.services.users import user_create

__all__ = [
    "QUEUE_SETTINGS",
    "assignment_claim_next",
    "assignment_claim_next_any",
    "assignment_skip",
    "assignments_expire",
    "judgment_submit",
    "queue_add_comparisons",
    "queue_add_gold",
    "queue_add_prompts",
    "queue_create",
    "queue_reprioritize",
    "rater_is_qualified",
    "rubric_create",
    "rubric_new_version",
    "user_create",
]
