"""Every hand-written statement of the rater loop, in one place (see ``labeling.sql``).

Each statement is rendered once per database vendor from the models' column lists and run with
named parameters (``%(name)s``); identifiers come from model metadata only, values only from
parameters, never from string formatting. Each docstring shows the statement as rendered on
PostgreSQL, with a select list written ``<columns of "table", ...>``;
``tests/labeling/test_sql.py`` checks that each docstring matches the real rendering. Names that
start with ``pg_`` are PostgreSQL-only.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model

from comparisons.models import Comparison, Prompt
from labeling.models import ApiKey, Assignment, Judgment, Queue, QueueItem, RaterQueuePause, Rubric
from labeling.sql.hydrate import column, insert_columns, quote, select_list, table
from labeling.sql.statement import Statement, statement
from labeling.sql.tag_statements import claim_pick_item_by_tag, claim_tag_work, queue_tag_targets


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


# --------------------------------------------------------------------------- reads


@statement(hydrates=(ApiKey, get_user_model()))
def api_key_with_user() -> str:
    """The API key with its user, by the digest of the key sent: every key-authenticated request.
    Expiry and the user's state are checked on the row (so each refusal says why).

    SELECT <columns of "labeling_apikey", "labeling_user"> FROM "labeling_apikey"
    INNER JOIN "labeling_user" ON "labeling_user"."id" = "labeling_apikey"."user_id"
    WHERE "labeling_apikey"."digest" = %(digest)s
    """
    user = get_user_model()
    return (
        f"SELECT {select_list(ApiKey, user)} FROM {table(ApiKey)}"  # noqa: S608
        f" INNER JOIN {table(user)} ON {column(user, 'id')} = {column(ApiKey, 'user_id')}"
        f" WHERE {column(ApiKey, 'digest')} = %(digest)s"
    )


@statement(hydrates=(Queue, Rubric))
def queue_for_member() -> str:
    """A queue with its rubric, if the rater is one of its members: the queue gatekeeper (every claim).

    SELECT <columns of "labeling_queue", "labeling_rubric"> FROM "labeling_queue"
    INNER JOIN "labeling_rubric" ON "labeling_rubric"."id" = "labeling_queue"."rubric_id"
    WHERE "labeling_queue"."id" = %(queue_id)s
    AND EXISTS (SELECT 1 FROM "labeling_queue_members"
    WHERE "labeling_queue_members"."queue_id" = "labeling_queue"."id"
    AND "labeling_queue_members"."user_id" = %(rater_id)s)
    """
    members = Queue.members.through
    return (
        f"SELECT {select_list(Queue, Rubric)} FROM {table(Queue)}"  # noqa: S608
        f" INNER JOIN {table(Rubric)} ON {column(Rubric, 'id')} = {column(Queue, 'rubric_id')}"
        f" WHERE {column(Queue, 'id')} = %(queue_id)s"
        f" AND EXISTS (SELECT 1 FROM {table(members)}"
        f" WHERE {column(members, 'queue_id')} = {column(Queue, 'id')}"
        f" AND {column(members, 'user_id')} = %(rater_id)s)"
    )


_FOR_RATER = (Assignment, QueueItem, Queue, Rubric, Comparison, Prompt)


@statement(hydrates=_FOR_RATER)
def assignment_for_rater() -> str:
    """An assignment with its item, queue, rubric, comparison and prompt, if it is the rater's
    own: the assignment gatekeeper (every judgment and skip).

    SELECT <columns of "labeling_assignment", "labeling_queueitem", "labeling_queue",
    "labeling_rubric", "comparisons_comparison", "comparisons_prompt"> FROM "labeling_assignment"
    INNER JOIN "labeling_queueitem" ON "labeling_queueitem"."id" = "labeling_assignment"."item_id"
    INNER JOIN "labeling_queue" ON "labeling_queue"."id" = "labeling_queueitem"."queue_id"
    INNER JOIN "labeling_rubric" ON "labeling_rubric"."id" = "labeling_queue"."rubric_id"
    INNER JOIN "comparisons_comparison"
    ON "comparisons_comparison"."id" = "labeling_queueitem"."comparison_id"
    INNER JOIN "comparisons_prompt" ON "comparisons_prompt"."id" = "comparisons_comparison"."prompt_id"
    WHERE "labeling_assignment"."id" = %(assignment_id)s
    AND "labeling_assignment"."rater_id" = %(rater_id)s
    """
    return (
        f"SELECT {select_list(*_FOR_RATER)} FROM {table(Assignment)}"  # noqa: S608
        f" INNER JOIN {table(QueueItem)} ON {column(QueueItem, 'id')} = {column(Assignment, 'item_id')}"
        f" INNER JOIN {table(Queue)} ON {column(Queue, 'id')} = {column(QueueItem, 'queue_id')}"
        f" INNER JOIN {table(Rubric)} ON {column(Rubric, 'id')} = {column(Queue, 'rubric_id')}"
        f" INNER JOIN {table(Comparison)}"
        f" ON {column(Comparison, 'id')} = {column(QueueItem, 'comparison_id')}"
        f" INNER JOIN {table(Prompt)} ON {column(Prompt, 'id')} = {column(Comparison, 'prompt_id')}"
        f" WHERE {column(Assignment, 'id')} = %(assignment_id)s"
        f" AND {column(Assignment, 'rater_id')} = %(rater_id)s"
    )


# -------------------------------------------------------------------------- claims


@statement()
def claim_lock_rater() -> str:
    """Lock the rater's row (one rater's concurrent claims run one after the other), check that
    they are a member of the queue, find their oldest live lease in it, and whether they are
    paused from it (an open ``RaterQueuePause``, probed through its partial unique index). No row:
    not a member.
    On PostgreSQL the claim's transaction also stops waiting for the disk at commit (a lease lost
    in a crash is harmless: the rater asks again; judgments still wait for the disk).

    SELECT "labeling_user"."id", (SELECT "labeling_assignment"."id" FROM "labeling_assignment"
    INNER JOIN "labeling_queueitem" ON "labeling_queueitem"."id" = "labeling_assignment"."item_id"
    WHERE "labeling_assignment"."rater_id" = "labeling_user"."id"
    AND "labeling_queueitem"."queue_id" = %(queue_id)s
    AND "labeling_assignment"."status" = %(leased)s AND "labeling_assignment"."expires_at" > %(now)s
    ORDER BY "labeling_assignment"."id" ASC LIMIT 1),
    EXISTS (SELECT 1 FROM "labeling_raterqueuepause"
    WHERE "labeling_raterqueuepause"."queue_id" = %(queue_id)s
    AND "labeling_raterqueuepause"."rater_id" = "labeling_user"."id"
    AND "labeling_raterqueuepause"."lifted_at" IS NULL),
    set_config('synchronous_commit', 'off', true) [PostgreSQL]
    FROM "labeling_user"
    INNER JOIN "labeling_queue_members" ON "labeling_queue_members"."user_id" = "labeling_user"."id"
    WHERE "labeling_user"."id" = %(rater_id)s AND "labeling_queue_members"."queue_id" = %(queue_id)s
    FOR UPDATE OF "labeling_user" [PostgreSQL]
    """
    user, members = get_user_model(), Queue.members.through
    held = (
        f"SELECT {column(Assignment, 'id')} FROM {table(Assignment)}"  # noqa: S608
        f" INNER JOIN {table(QueueItem)} ON {column(QueueItem, 'id')} = {column(Assignment, 'item_id')}"
        f" WHERE {column(Assignment, 'rater_id')} = {column(user, 'id')}"
        f" AND {column(QueueItem, 'queue_id')} = %(queue_id)s"
        f" AND {column(Assignment, 'status')} = %(leased)s AND {column(Assignment, 'expires_at')} > %(now)s"
        f" ORDER BY {column(Assignment, 'id')} ASC LIMIT 1"
    )
    paused = (
        f"EXISTS (SELECT 1 FROM {table(RaterQueuePause)}"  # noqa: S608
        f" WHERE {column(RaterQueuePause, 'queue_id')} = %(queue_id)s"
        f" AND {column(RaterQueuePause, 'rater_id')} = {column(user, 'id')}"
        f" AND {column(RaterQueuePause, 'lifted_at')} IS NULL)"
    )
    return (
        f"SELECT {column(user, 'id')}, ({held}), {paused}"  # noqa: S608
        + (", set_config('synchronous_commit', 'off', true)" if _is_postgresql() else "")
        + f" FROM {table(user)}"
        f" INNER JOIN {table(members)} ON {column(members, 'user_id')} = {column(user, 'id')}"
        f" WHERE {column(user, 'id')} = %(rater_id)s AND {column(members, 'queue_id')} = %(queue_id)s"
        + (f" FOR UPDATE OF {table(user)}" if _is_postgresql() else "")
    )


_PICKED = (QueueItem, Comparison, Prompt)


def _pick(*, gold: bool, room: str | None = None) -> str:
    """A pick statement; ``room`` replaces the overlap test of real items (the per-tag pick,
    ``labeling.sql.tag_statements``)."""
    if room is None:
        room = (
            ""
            if gold
            else f" AND {column(QueueItem, 'claimed')} < (SELECT {column(Queue, 'overlap')} FROM {table(Queue)}"  # noqa: S608
            f" WHERE {column(Queue, 'id')} = %(queue_id)s)"
        )
    return (
        f"SELECT {select_list(*_PICKED)} FROM {table(QueueItem)}"  # noqa: S608
        f" INNER JOIN {table(Comparison)} ON {column(Comparison, 'id')} = {column(QueueItem, 'comparison_id')}"
        f" INNER JOIN {table(Prompt)} ON {column(Prompt, 'id')} = {column(Comparison, 'prompt_id')}"
        f" WHERE {column(QueueItem, 'queue_id')} = %(queue_id)s"
        f" AND {column(QueueItem, 'is_gold')} = %(is_gold)s"
        f" AND NOT {column(QueueItem, 'retired')}"
        # Gold items are answered by every rater; real items stop at the overlap.
        # The overlap is read in the statement, not passed in: a claim never uses an overlap that an
        # admin lowered before it started (queue_update_settings locks the items it could overfill).
        + room
        + f" AND NOT EXISTS (SELECT 1 FROM {table(Assignment)}"  # noqa: S608
        f" WHERE {column(Assignment, 'item_id')} = {column(QueueItem, 'id')}"
        f" AND {column(Assignment, 'rater_id')} = %(rater_id)s)"
        f" ORDER BY {column(QueueItem, 'priority')} DESC, {column(QueueItem, 'id')} ASC LIMIT 1"
        + (f" FOR UPDATE OF {table(QueueItem)} SKIP LOCKED" if _is_postgresql() else "")
    )


@statement(hydrates=_PICKED)
def claim_pick_item() -> str:
    """The first item of the queue by (priority desc, id) that has room and this rater has not
    seen, with its comparison and prompt, locked; items another claimer holds are skipped, never
    waited on (PostgreSQL). NOT EXISTS probes the (item, rater) unique key for each item with
    room, walking ``queueitem_pick_idx`` in order, and stops at the first unseen one.

    SELECT <columns of "labeling_queueitem", "comparisons_comparison", "comparisons_prompt">
    FROM "labeling_queueitem"
    INNER JOIN "comparisons_comparison" ON "comparisons_comparison"."id" = "labeling_queueitem"."comparison_id"
    INNER JOIN "comparisons_prompt" ON "comparisons_prompt"."id" = "comparisons_comparison"."prompt_id"
    WHERE "labeling_queueitem"."queue_id" = %(queue_id)s AND "labeling_queueitem"."is_gold" = %(is_gold)s
    AND NOT "labeling_queueitem"."retired" AND "labeling_queueitem"."claimed" <
    (SELECT "labeling_queue"."overlap" FROM "labeling_queue" WHERE "labeling_queue"."id" = %(queue_id)s)
    AND NOT EXISTS (SELECT 1 FROM "labeling_assignment"
    WHERE "labeling_assignment"."item_id" = "labeling_queueitem"."id"
    AND "labeling_assignment"."rater_id" = %(rater_id)s)
    ORDER BY "labeling_queueitem"."priority" DESC, "labeling_queueitem"."id" ASC LIMIT 1
    FOR UPDATE OF "labeling_queueitem" SKIP LOCKED [PostgreSQL]
    """
    return _pick(gold=False)


@statement(hydrates=_PICKED)
def claim_pick_gold_item() -> str:
    """As ``claim_pick_item``, among the queue's gold items, which have no overlap limit.

    SELECT <columns of "labeling_queueitem", "comparisons_comparison", "comparisons_prompt">
    FROM "labeling_queueitem"
    INNER JOIN "comparisons_comparison" ON "comparisons_comparison"."id" = "labeling_queueitem"."comparison_id"
    INNER JOIN "comparisons_prompt" ON "comparisons_prompt"."id" = "comparisons_comparison"."prompt_id"
    WHERE "labeling_queueitem"."queue_id" = %(queue_id)s AND "labeling_queueitem"."is_gold" = %(is_gold)s
    AND NOT "labeling_queueitem"."retired"
    AND NOT EXISTS (SELECT 1 FROM "labeling_assignment"
    WHERE "labeling_assignment"."item_id" = "labeling_queueitem"."id"
    AND "labeling_assignment"."rater_id" = %(rater_id)s)
    ORDER BY "labeling_queueitem"."priority" DESC, "labeling_queueitem"."id" ASC LIMIT 1
    FOR UPDATE OF "labeling_queueitem" SKIP LOCKED [PostgreSQL]
    """
    return _pick(gold=True)


# -------------------------------------------------------------- PostgreSQL-only writes


@statement(postgresql_only=True)
def pg_lease_insert() -> str:
    """Take one of the item's slots and insert the rater's lease, in one round trip; returns the
    new assignment's id. The claim's pick holds the item's row lock.

    WITH bumped AS (UPDATE "labeling_queueitem" SET "claimed" = "claimed" + 1
    WHERE "id" = %(row_item_id)s)
    INSERT INTO "labeling_assignment" ("item_id", "rater_id", "status", "shown_order", "expires_at",
    "skip_reason", "requeue", "created_at", "updated_at")
    VALUES (%(row_item_id)s::bigint, %(row_rater_id)s::bigint, %(row_status)s::varchar(16),
    %(row_shown_order)s::jsonb, %(row_expires_at)s::timestamp with time zone,
    %(row_skip_reason)s::varchar(500), %(row_requeue)s::boolean,
    %(row_created_at)s::timestamp with time zone, %(row_updated_at)s::timestamp with time zone)
    RETURNING "id"
    """
    columns, placeholders = insert_columns(Assignment)
    return (
        f"WITH bumped AS (UPDATE {table(QueueItem)} SET {quote('claimed')} = {quote('claimed')} + 1"  # noqa: S608
        f" WHERE {quote('id')} = %(row_item_id)s)"
        f" INSERT INTO {table(Assignment)} ({', '.join(columns)}) VALUES ({', '.join(placeholders)})"
        f" RETURNING {quote('id')}"
    )


@statement(postgresql_only=True)
def pg_judgment_record() -> str:
    """If the assignment is still leased: mark it submitted, count the judgment on its item and
    insert the judgment, in one round trip; returns the judgment's id. No row, and nothing
    written, when the lease is not live (judged, skipped or expired). The update takes the
    assignment's row lock, so a concurrent double click or expiry waits and then finds it no
    longer leased.

    WITH moved AS (UPDATE "labeling_assignment" SET "status" = %(submitted)s, "updated_at" = %(now)s
    WHERE "id" = %(assignment_id)s AND "status" = %(leased)s RETURNING "id", "item_id"),
    bumped AS (UPDATE "labeling_queueitem" SET "judged" = "judged" + 1
    WHERE "id" IN (SELECT "item_id" FROM moved))
    INSERT INTO "labeling_judgment" ("assignment_id", "rubric_id", "preference", "ranking", "criteria",
    "flags", "rationale", "rewrite", "active_seconds", "created_at")
    SELECT moved."id", %(row_rubric_id)s::bigint, %(row_preference)s::smallint,
    %(row_ranking)s::jsonb, %(row_criteria)s::jsonb, %(row_flags)s::jsonb, %(row_rationale)s::text,
    %(row_rewrite)s::text, %(row_active_seconds)s::double precision,
    %(row_created_at)s::timestamp with time zone FROM moved RETURNING "id"
    """
    columns, placeholders = insert_columns(Judgment)
    at = [f.attname for f in Judgment._meta.concrete_fields if not f.primary_key].index("assignment_id")
    placeholders[at] = f"moved.{quote('id')}"
    return (
        f"WITH moved AS (UPDATE {table(Assignment)} SET {quote('status')} = %(submitted)s,"  # noqa: S608
        f" {quote('updated_at')} = %(now)s"
        f" WHERE {quote('id')} = %(assignment_id)s AND {quote('status')} = %(leased)s"
        f" RETURNING {quote('id')}, {quote('item_id')}),"
        f" bumped AS (UPDATE {table(QueueItem)} SET {quote('judged')} = {quote('judged')} + 1"
        f" WHERE {quote('id')} IN (SELECT {quote('item_id')} FROM moved))"
        f" INSERT INTO {table(Judgment)} ({', '.join(columns)}) SELECT {', '.join(placeholders)} FROM moved"
        f" RETURNING {quote('id')}"
    )


#: Every statement, for the tests that check them.
ALL: tuple[Statement, ...] = (
    api_key_with_user,
    queue_for_member,
    assignment_for_rater,
    claim_lock_rater,
    claim_pick_item,
    claim_pick_gold_item,
    claim_pick_item_by_tag,
    claim_tag_work,
    queue_tag_targets,
    pg_lease_insert,
    pg_judgment_record,
)
#: The models these statements write: hand-written writes skip ``save()`` and model signals.
WRITTEN_MODELS: tuple[type[Model], ...] = (Assignment, QueueItem, Judgment)
