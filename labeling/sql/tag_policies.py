"""SQL fragments for a queue's per-tag policies (``Queue.tag_policies``), one per database vendor.

JSON is read differently by the two databases (``jsonb_array_elements_text`` and ``->`` on
PostgreSQL, ``json_each`` and ``json_extract`` on SQLite), so each fragment is written twice; the
rules they compute are stated once, in ``labeling.selectors.tag_policies`` (``item_overlap``,
``tag_share_cap``), and ``tests/labeling/test_tag_policies.py`` checks that both agree.

Fragments take the SQL of their inputs (a column, a ``%(name)s`` parameter) and return SQL: the
callers own the parameters. Identifiers come from model metadata only.
"""

from __future__ import annotations

from django.db import connection

from labeling.models import Queue
from labeling.sql.hydrate import column, table


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def tag_overlap_sql(*, tags: str, queue_id: str) -> str:
    """The highest ``overlap`` among the policies of the prompt tags ``tags`` (a JSON list) in
    queue ``queue_id``; NULL when no tag has one. The policies are read as stored when the
    statement runs."""
    policies = column(Queue, "tag_policies")
    if _is_postgresql():
        return (
            f"(SELECT MAX(({policies} -> policy_tag.tag ->> 'overlap')::integer)"  # noqa: S608
            f" FROM {table(Queue)} CROSS JOIN jsonb_array_elements_text({tags}) AS policy_tag(tag)"
            f" WHERE {column(Queue, 'id')} = {queue_id})"
        )
    return (
        "(SELECT MAX(CAST(json_extract(policy.value, '$.overlap') AS INTEGER))"  # noqa: S608
        f" FROM {table(Queue)}, json_each({tags}) AS policy_tag, json_each({policies}) AS policy"
        f" WHERE {column(Queue, 'id')} = {queue_id} AND policy.key = policy_tag.value)"
    )


def queue_overlap_sql(*, queue_id: str) -> str:
    """The queue's own overlap, as stored when the statement runs."""
    return f"(SELECT {column(Queue, 'overlap')} FROM {table(Queue)} WHERE {column(Queue, 'id')} = {queue_id})"  # noqa: S608


def item_overlap_sql(*, tags: str, queue_id: str, policy_tags: str | None = None) -> str:
    """An item's overlap: the queue's, or the highest overlap of its prompt's tags' policies when
    that is higher (``labeling.selectors.tag_policies.item_overlap``).

    ``policy_tags`` (a JSON list parameter: the tags with an overlap policy, as the caller read
    them) lets an item whose prompt carries none of them skip the policy lookup and take the
    queue's overlap: on PostgreSQL one ``?|`` test per row instead of a subquery. A tag given a
    policy after the caller read them only leaves its items at the queue's overlap for this
    statement (never more), and a policy removed or lowered meanwhile is seen (the lookup reads
    the policies as stored).
    """
    queue_overlap = queue_overlap_sql(queue_id=queue_id)
    tagged = tag_overlap_sql(tags=tags, queue_id=queue_id)
    if _is_postgresql():
        full = f"GREATEST({queue_overlap}, {tagged})"  # GREATEST skips NULL
    else:
        full = f"MAX({queue_overlap}, COALESCE({tagged}, 0))"
    if policy_tags is None:
        return full
    return f"CASE WHEN {tags_hit_sql(tags=tags, wanted=policy_tags)} THEN {full} ELSE {queue_overlap} END"


def json_list_sql(param: str) -> str:
    """A FROM item giving one row per element of the JSON list ``param``, in a column ``value``."""
    if _is_postgresql():
        return f"jsonb_array_elements_text(CAST({param} AS jsonb)) AS wanted(value)"
    return f"json_each({param}) AS wanted"


def tags_hit_sql(*, tags: str, wanted: str) -> str:
    """Does the JSON list ``tags`` hold any tag of the JSON list ``wanted`` (a parameter)? On
    PostgreSQL the ``?|`` operator, against an array built once per statement."""
    if _is_postgresql():
        return f"({tags} ?| ARRAY(SELECT jsonb_array_elements_text(CAST({wanted} AS jsonb))))"
    each, tag = each_tag_sql(tags=tags, name="hit")
    return f"EXISTS (SELECT 1 FROM {each} WHERE {tag} IN (SELECT value FROM {json_list_sql(wanted)}))"  # noqa: S608


def tag_in_sql(*, tags: str, tag: str) -> str:
    """Does the JSON list ``tags`` hold ``tag`` (SQL of one text value)? On PostgreSQL the ``?``
    operator, which the planner estimates sensibly (a function scan counts as 100 rows)."""
    if _is_postgresql():
        return f"{tags} ? {tag}"
    return f"EXISTS (SELECT 1 FROM json_each({tags}) AS has WHERE has.value = {tag})"  # noqa: S608


def each_tag_sql(*, tags: str, name: str = "each_tag") -> tuple[str, str]:
    """A FROM item giving one row per tag of the JSON list ``tags`` (named ``name``), and the
    SQL of that tag."""
    if _is_postgresql():
        return f"jsonb_array_elements_text({tags}) AS {name}(tag)", f"{name}.tag"
    return f"json_each({tags}) AS {name}", f"{name}.value"
