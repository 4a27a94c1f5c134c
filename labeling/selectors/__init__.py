"""Reads for labeling, one module per subject. What a rater may touch is fetched only through
the two gatekeepers, ``queue_get_for_rater`` and ``assignment_get_for_rater``, which 404 otherwise.

- ``queues``: the queue gatekeeper, queue lists, a rater's progress, rubric criteria;
- ``assignments``: the assignment gatekeeper, what a rater is shown, open and undoable leases;
- ``quality``: answers in the comparison's stored order, gold accuracy;
- ``content_warnings``: the warnings an item carries, a rater's opt-outs;
- ``dashboards``: the admin queue dashboards (progress, throughput, per-rater quality);
- ``agreement`` (arithmetic in ``agreement_math``): agreement per criterion with bootstrap
  intervals; ``rater_trust``: position bias, rates, per-rater trust and anomaly flags;
- ``queue_admin``: how low a queue's overlap may go, users named as members (by name or group);
- ``integrity``: every counter and invariant recomputed from the rows (``check_integrity``).
- ``api_keys``: a user's API keys (never the key itself); ``audit``: the audit log, filtered,
  paged and downloaded.
"""

from labeling.selectors.assignments import (
    LABELS,
    assignment_get_for_rater,
    assignment_payload,
    rater_last_undoable,
    rater_open_assignment,
)
from labeling.selectors.content_warnings import (
    CONTENT_WARNING_PREFIX,
    content_warnings_for_assignment,
    queue_opted_out_category,
)
from labeling.selectors.quality import (
    comparison_orders,
    judgment_matches_gold,
    preference_in_positions,
    ranking_in_positions,
    rater_gold_accuracy,
)
from labeling.selectors.queues import (
    queue_get_for_rater,
    queue_list_for_user,
    queue_stats_for_rater,
    rater_queue_progress,
    rubric_criteria,
)

__all__ = [
    "CONTENT_WARNING_PREFIX",
    "LABELS",
    "assignment_get_for_rater",
    "assignment_payload",
    "comparison_orders",
    "content_warnings_for_assignment",
    "judgment_matches_gold",
    "preference_in_positions",
    "queue_get_for_rater",
    "queue_list_for_user",
    "queue_opted_out_category",
    "queue_stats_for_rater",
    "ranking_in_positions",
    "rater_gold_accuracy",
    "rater_last_undoable",
    "rater_open_assignment",
    "rater_queue_progress",
    "rubric_criteria",
]
