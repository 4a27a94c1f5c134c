"""Writes for labeling, one module per subject:

- ``assignments``: the assignment lifecycle, the only place that changes ``Assignment.status``
  and the item counters ``claimed``/``judged`` (lease, submit, skip, pass on, expire, reopen);
- ``claims``: the one door to the next item (membership, qualification, caps, gold, opt-outs);
- ``judgments``: checking and recording answers (and a rater's rewrite);
- ``queue_admin``: running a queue once it exists (the only place that changes ``Queue.status``),
  its safe settings and its members;
- ``queues``, ``adaptive``, ``rubrics``, ``users``, ``raters``;
- ``api_keys``: API keys made (shown once), revoked, marked used; ``audit``: the audit log's one
  writer and the login, lockout and admin signals it records.

Lock order, everywhere: rater row -> assignment row -> queue item row. Keeping one order is
what keeps concurrent claims, submits, skips and lease expiry free of deadlocks on PostgreSQL.
On SQLite every transaction starts IMMEDIATE (see settings), which serializes writers.
"""

from labeling.services.adaptive import queue_reprioritize
from labeling.services.assignments import (
    assignment_reopen_last,
    assignment_skip,
    assignments_expire,
    queue_items_recount,
)
from labeling.services.claims import assignment_claim_next, assignment_claim_next_any, rater_is_qualified
from labeling.services.judgments import judgment_submit
from labeling.services.queues import (
    QUEUE_BUILD_SETTINGS,
    QUEUE_SETTINGS,
    QueueCreated,
    QueueItemsAdded,
    queue_add_comparisons,
    queue_add_gold,
    queue_add_prompts,
    queue_create,
    queue_create_with_items,
)
from labeling.services.raters import rater_set_content_opt_outs
from labeling.services.rubrics import rubric_create, rubric_new_version
from labeling.services.users import user_create

__all__ = [
    "QUEUE_BUILD_SETTINGS",
    "QUEUE_SETTINGS",
    "QueueCreated",
    "QueueItemsAdded",
    "assignment_claim_next",
    "assignment_claim_next_any",
    "assignment_reopen_last",
    "assignment_skip",
    "assignments_expire",
    "judgment_submit",
    "queue_add_comparisons",
    "queue_add_gold",
    "queue_add_prompts",
    "queue_create",
    "queue_create_with_items",
    "queue_items_recount",
    "queue_reprioritize",
    "rater_is_qualified",
    "rater_set_content_opt_outs",
    "rubric_create",
    "rubric_new_version",
    "user_create",
]
