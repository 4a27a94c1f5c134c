"""The hand-written statements of sensitive topics (``Queue.tag_policies``, see
``labeling.selectors.tag_policies``): the per-tag pick, a rater's work per capped tag, a queue's
targets. Listed with the others in ``labeling.sql.statements`` (``ALL``, checked by
``tests/labeling/test_sql.py``) and used through it."""

from __future__ import annotations

from comparisons.models import Comparison, Prompt
from labeling.models import Assignment, QueueItem
from labeling.sql.hydrate import column, table
from labeling.sql.statement import statement
from labeling.sql.tag_policies import item_overlap_sql, json_list_sql, tag_in_sql, tags_hit_sql


@statement(hydrates=(QueueItem, Comparison, Prompt))
def claim_pick_item_by_tag() -> str:
    """As ``claim_pick_item``, in a queue with per-tag policies (``labeling.selectors.tag_policies``):
    each item has room up to its own overlap (the queue's, or its prompt's tags' highest policy
    overlap), read as stored when the statement runs; ``most_overlap`` (the queue's highest) is a
    first bound the index checks, and ``policy_tags`` (the tags with an overlap policy) spares the
    items carrying none of them the policy lookup (``labeling.sql.tag_policies.item_overlap_sql``).
    Items whose prompt carries a tag of ``capped_tags`` (a JSON list: the tags the rater is at
    the share cap of) are passed over.

    SELECT <columns of "labeling_queueitem", "comparisons_comparison", "comparisons_prompt">
    FROM "labeling_queueitem"
    INNER JOIN "comparisons_comparison" ON "comparisons_comparison"."id" =
    "labeling_queueitem"."comparison_id"
    INNER JOIN "comparisons_prompt" ON "comparisons_prompt"."id" = "comparisons_comparison"."prompt_id"
    WHERE "labeling_queueitem"."queue_id" = %(queue_id)s
    AND "labeling_queueitem"."is_gold" = %(is_gold)s
    AND NOT "labeling_queueitem"."retired"
    AND "labeling_queueitem"."claimed" < %(most_overlap)s
    AND "labeling_queueitem"."claimed" <
    CASE WHEN ("comparisons_prompt"."tags" ?| ARRAY(SELECT
    jsonb_array_elements_text(CAST(%(policy_tags)s AS jsonb))))
    THEN GREATEST((SELECT "labeling_queue"."overlap"
    FROM "labeling_queue"
    WHERE "labeling_queue"."id" = %(queue_id)s), (SELECT MAX(("labeling_queue"."tag_policies" ->
    policy_tag.tag ->> 'overlap')::integer)
    FROM "labeling_queue"
    CROSS JOIN jsonb_array_elements_text("comparisons_prompt"."tags") AS policy_tag(tag)
    WHERE "labeling_queue"."id" = %(queue_id)s))
    ELSE (SELECT "labeling_queue"."overlap"
    FROM "labeling_queue"
    WHERE "labeling_queue"."id" = %(queue_id)s) END
    AND NOT ("comparisons_prompt"."tags" ?| ARRAY(SELECT jsonb_array_elements_text(CAST(%(capped_tags)s
    AS jsonb))))
    AND NOT EXISTS (SELECT 1
    FROM "labeling_assignment"
    WHERE "labeling_assignment"."item_id" = "labeling_queueitem"."id"
    AND "labeling_assignment"."rater_id" = %(rater_id)s)
    ORDER BY "labeling_queueitem"."priority" DESC, "labeling_queueitem"."id" ASC LIMIT 1
    FOR UPDATE OF "labeling_queueitem" SKIP LOCKED [PostgreSQL]
    """
    from labeling.sql.statements import _pick  # at render time: statements imports this module

    # Each item's own overlap (labeling.sql.tag_policies), after a cheap bound on ``claimed``
    # that the index checks: items full at the queue's highest overlap are passed over there.
    # Items carrying a tag the rater is at the share cap of are passed over too.
    tags = column(Prompt, "tags")
    return _pick(
        gold=False,
        room=(
            f" AND {column(QueueItem, 'claimed')} < %(most_overlap)s"
            f" AND {column(QueueItem, 'claimed')}"
            f" < {item_overlap_sql(tags=tags, queue_id='%(queue_id)s', policy_tags='%(policy_tags)s')}"
            f" AND NOT {tags_hit_sql(tags=tags, wanted='%(capped_tags)s')}"
        ),
    )


@statement()
def claim_tag_work() -> str:
    """Per tag of ``tags`` (a JSON list: the queue's capped tags), the rater's leased or
    submitted assignments on the queue's real items whose prompt carries it: their work on the
    tag, for its share cap (``labeling.selectors.tag_policies``). Run under the rater's row lock;
    reads only the rater's own assignments.

    SELECT wanted.value, COUNT(*)
    FROM "labeling_assignment"
    INNER JOIN "labeling_queueitem" ON "labeling_queueitem"."id" = "labeling_assignment"."item_id"
    INNER JOIN "comparisons_comparison" ON "comparisons_comparison"."id" =
    "labeling_queueitem"."comparison_id"
    INNER JOIN "comparisons_prompt" ON "comparisons_prompt"."id" = "comparisons_comparison"."prompt_id"
    INNER JOIN jsonb_array_elements_text(CAST(%(tags)s AS jsonb)) AS wanted(value) ON
    "comparisons_prompt"."tags" ? wanted.value
    WHERE "labeling_assignment"."rater_id" = %(rater_id)s
    AND "labeling_assignment"."status" IN (%(leased)s, %(submitted)s)
    AND "labeling_queueitem"."queue_id" = %(queue_id)s
    AND NOT "labeling_queueitem"."is_gold"
    GROUP BY wanted.value
    """
    tags = column(Prompt, "tags")
    return (
        f"SELECT wanted.value, COUNT(*) FROM {table(Assignment)}"  # noqa: S608
        f" INNER JOIN {table(QueueItem)} ON {column(QueueItem, 'id')} = {column(Assignment, 'item_id')}"
        f" INNER JOIN {table(Comparison)} ON {column(Comparison, 'id')} = {column(QueueItem, 'comparison_id')}"
        f" INNER JOIN {table(Prompt)} ON {column(Prompt, 'id')} = {column(Comparison, 'prompt_id')}"
        f" INNER JOIN {json_list_sql('%(tags)s')} ON {tag_in_sql(tags=tags, tag='wanted.value')}"
        f" WHERE {column(Assignment, 'rater_id')} = %(rater_id)s"
        f" AND {column(Assignment, 'status')} IN (%(leased)s, %(submitted)s)"
        f" AND {column(QueueItem, 'queue_id')} = %(queue_id)s AND NOT {column(QueueItem, 'is_gold')}"
        " GROUP BY wanted.value"
    )


@statement()
def queue_tag_targets() -> str:
    """Per tag of ``tags`` (a JSON list), the judgments the queue wants on its real items whose
    prompt carries it: the sum of their overlaps (``labeling.selectors.tag_policies``). Reads
    the queue's items; the claim keeps it a few seconds per process.

    SELECT wanted.value, SUM(GREATEST((SELECT "labeling_queue"."overlap"
    FROM "labeling_queue"
    WHERE "labeling_queue"."id" = %(queue_id)s), (SELECT MAX(("labeling_queue"."tag_policies" ->
    policy_tag.tag ->> 'overlap')::integer)
    FROM "labeling_queue" CROSS JOIN jsonb_array_elements_text("comparisons_prompt"."tags") AS
    policy_tag(tag)
    WHERE "labeling_queue"."id" = %(queue_id)s)))
    FROM "labeling_queueitem"
    INNER JOIN "comparisons_comparison" ON "comparisons_comparison"."id" =
    "labeling_queueitem"."comparison_id"
    INNER JOIN "comparisons_prompt" ON "comparisons_prompt"."id" = "comparisons_comparison"."prompt_id"
    INNER JOIN jsonb_array_elements_text(CAST(%(tags)s AS jsonb)) AS wanted(value) ON
    "comparisons_prompt"."tags" ? wanted.value
    WHERE "labeling_queueitem"."queue_id" = %(queue_id)s
    AND NOT "labeling_queueitem"."is_gold"
    GROUP BY wanted.value
    """
    tags = column(Prompt, "tags")
    return (
        f"SELECT wanted.value, SUM({item_overlap_sql(tags=tags, queue_id='%(queue_id)s')})"  # noqa: S608
        f" FROM {table(QueueItem)}"
        f" INNER JOIN {table(Comparison)} ON {column(Comparison, 'id')} = {column(QueueItem, 'comparison_id')}"
        f" INNER JOIN {table(Prompt)} ON {column(Prompt, 'id')} = {column(Comparison, 'prompt_id')}"
        f" INNER JOIN {json_list_sql('%(tags)s')} ON {tag_in_sql(tags=tags, tag='wanted.value')}"
        f" WHERE {column(QueueItem, 'queue_id')} = %(queue_id)s AND NOT {column(QueueItem, 'is_gold')}"
        " GROUP BY wanted.value"
    )
