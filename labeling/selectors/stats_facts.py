"""One compact row per judgment of a queue, as numpy arrays: what the queue statistics
(``dashboards.queue_raters``, ``rater_trust``, ``agreement``) need, read in one query.

A million judgments come back as a few numeric columns (no model instances, no JSON decoded per
row): the rater, the item, whether the item is gold, the active seconds, the preference in the
labels shown, whether the pair was shown swapped (the comparison's first stored candidate not
shown as A, worked out in the database by joining the comparison's first member), when it was
made and whether it carries the ``both_bad`` flag; and, when asked, the answer to each criterion
as a small integer read from the JSON in the database (``answer_columns``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    F,
    FilteredRelation,
    FloatField,
    Func,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from labeling.models import Judgment, Queue


def queryset_array(queryset: QuerySet[Any], fields: list[str]) -> np.ndarray:
    """The queryset's ``values_list(*fields)`` as a float array (rows x fields; NULL is nan),
    fetched with the database cursor (no per-row Django conversion)."""
    sql, params = queryset.values_list(*fields).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return np.zeros((0, len(fields)))
    return np.array(rows, dtype=float)


class _Epoch(Func):
    """Seconds since 1970 of a datetime (UTC), as a float."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)::double precision"
    output_field = FloatField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return self.as_sql(compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS REAL)")


class _JsonAt(Func):
    """The JSON value at ``path`` (keys) of a JSON column, as a small integer or NULL: an integer
    as itself (``kind="integer"``), or true/false as 1/0 (``kind="boolean"``); anything else NULL."""

    output_field = IntegerField()

    def __init__(self, column: str, path: list[str], kind: str) -> None:
        super().__init__(F(column))
        self.path, self.kind = path, kind

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        column, params = compiler.compile(self.source_expressions[0])
        if self.kind == "integer":
            sql = (
                f"CASE WHEN jsonb_typeof({column} #> %s) = 'number' AND ({column} #>> %s) ~ '^-?[0-9]+$' "
                f"THEN ({column} #>> %s)::integer END"
            )
        else:
            sql = (
                f"CASE WHEN jsonb_typeof({column} #> %s) = 'boolean' "
                f"THEN CASE WHEN ({column} #>> %s) = 'true' THEN 1 ELSE 0 END END"
            )
        count = sql.count("%s")
        return sql, (*params, *([self.path] * count))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        column, params = compiler.compile(self.source_expressions[0])
        path = "$" + "".join(f'."{key}"' for key in self.path)
        if self.kind == "integer":
            sql = f"CASE WHEN json_type({column}, %s) = 'integer' THEN json_extract({column}, %s) END"
        else:
            sql = f"CASE json_type({column}, %s) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END"
        return sql, (*params, *([path] * sql.count("%s")))


@dataclass(frozen=True)
class JudgmentFacts:
    """Arrays with one entry per judgment of the queue (in no particular order). ``preference``:
    in the labels shown, nan when none (a ranking); ``swapped``: 1 when the comparison's first
    stored candidate was shown as B, nan when the comparison has no stored members; ``created``:
    seconds since 1970; ``both_bad``: the judgment carries the ``both_bad`` flag; ``texts``: each
    criterion's answer (``answers``, by the keys ``answer_columns`` gives), when asked for."""

    ids: np.ndarray
    rater: np.ndarray
    item: np.ndarray
    gold: np.ndarray
    active: np.ndarray
    preference: np.ndarray
    swapped: np.ndarray
    created: np.ndarray
    both_bad: np.ndarray
    answers: dict[str, np.ndarray] | None = None

    def canonical_preference(self) -> np.ndarray:
        """The pairwise preference in the comparison's stored order (negative: its first
        candidate is better); nan without a preference or a stored order."""
        return np.where(self.swapped == 1, -self.preference, self.preference)


#: PostgreSQL's work_mem for the facts query: a million judgments' joins fit in memory.
WORK_MEM = "64MB"

FIELDS = ["id", "assignment__rater_id", "assignment__item_id", "gold", "active_seconds", "preference"]
FIELDS += ["swapped", "created", "both_bad"]


def _numbers(queryset: QuerySet[Any], width: int) -> np.ndarray:
    """The rows of a values_list of numbers as a float array (NULL: nan). PostgreSQL sends them
    with COPY as text, parsed by numpy in one call (no Python object per value), its joins' hash
    tables in memory (``WORK_MEM``, this query only); other databases through the cursor."""
    sql, params = queryset.query.sql_with_params()
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return np.array(rows, dtype=float) if rows else np.zeros((0, width))
    buffer = bytearray()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT", params) as copy:  # psycopg's cursor
            for block in copy:
                buffer += block
    text = bytes(buffer).replace(b"\\N", b"nan").replace(b"\t", b" ").decode("ascii")
    return np.fromstring(text, sep=" ").reshape(-1, width) if text.strip() else np.zeros((0, width))


def flagged(flag: str) -> Q:
    """The judgment's flags name ``flag`` (JSON containment where the database has it, else the
    quoted name in the list's text: flags are slugs)."""
    if connection.features.supports_json_field_contains:
        return Q(flags__contains=[flag])
    return Q(flags_text__contains=f'"{flag}"')


def answer_columns(criteria: list[tuple[str, str]]) -> dict[str, Any]:
    """SQL expressions for the answers to (key, kind) criteria: a preference criterion's integer
    (``key``), a likert criterion's integer scores of A and B (``key:A``, ``key:B``), a flag's
    true/false (``key``; 1 also when the judgment's flags name it, NULL when neither)."""
    columns: dict[str, Any] = {}
    for key, kind in criteria:
        if kind == "preference":
            columns[key] = _JsonAt("criteria", [key], "integer")
        elif kind == "likert":
            columns[f"{key}:A"] = _JsonAt("criteria", [key, "A"], "integer")
            columns[f"{key}:B"] = _JsonAt("criteria", [key, "B"], "integer")
        elif kind == "flag":
            columns[key] = Case(
                When(flagged(key), then=Value(1)),
                default=_JsonAt("criteria", [key], "boolean"),
                output_field=IntegerField(),
            )
    return columns


def facts_queryset(queue: Queue, criteria: list[tuple[str, str]] | None) -> tuple[QuerySet[Any], list[str]]:
    """The queue's judgments annotated with every fact (``FIELDS``, then the answers to
    ``criteria`` as ``answer_0``, ``answer_1``, ...), and the answers' keys in that order."""
    first = "assignment__item__comparison__members"
    shown_as_a = Cast(KeyTextTransform("0", "assignment__shown_order"), BigIntegerField())
    extra = answer_columns(criteria or [])
    names = {f"answer_{i}": key for i, key in enumerate(extra)}
    queryset = (
        Judgment.objects.filter(assignment__item__queue=queue)
        .annotate(first=FilteredRelation(first, condition=Q(**{f"{first}__position": 0})))
        .annotate(
            gold=Case(When(assignment__item__is_gold=True, then=Value(1)), default=Value(0)),
            swapped=Case(
                When(first__candidate_id__isnull=True, then=Value(None)),
                When(first__candidate_id=shown_as_a, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            created=_Epoch("created_at"),
            flags_text=Cast("flags", TextField()),
        )
        .annotate(
            both_bad=Case(When(flagged("both_bad"), then=Value(1)), default=Value(0)),
            **{name: extra[key] for name, key in names.items()},
        )
        .order_by()
    )
    return queryset, list(names.values())


def _facts_from(
    columns: list[np.ndarray], keys: list[str], *, criteria: bool, gold: np.ndarray | None = None
) -> JudgmentFacts:
    """``JudgmentFacts`` from the columns ``FIELDS`` then one per answer key, in judgment id
    order (sorted here unless they already are: the raters' "first judgment" order is then the
    same however the rows came); ``gold`` (the gold items' ids) replaces the gold column."""
    ids = columns[0]
    if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        order = np.argsort(ids, kind="stable")
        columns = [column[order] for column in columns]
    ids, rater, item, gold_column, active, preference, swapped, created, both_bad = columns[: len(FIELDS)]
    return JudgmentFacts(
        ids=ids.astype(np.int64),
        rater=rater.astype(np.int64),
        item=item.astype(np.int64),
        gold=(gold_column if gold is None else np.isin(item, gold)).astype(bool),
        active=active,
        preference=preference,
        swapped=swapped,
        created=created,
        both_bad=both_bad.astype(bool),
        answers={key: columns[len(FIELDS) + i] for i, key in enumerate(keys)} if criteria else None,
    )


def judgment_facts(
    *, queue: Queue, criteria: list[tuple[str, str]] | None = None, unfolded_after: int | None = None
) -> JudgmentFacts:
    """The queue's judgments as arrays, computed from the judgments in one query (with the
    answers to ``criteria``, (key, kind) pairs, when given); with ``unfolded_after``, only those
    with a greater id that have no stored fact yet."""
    queryset, keys = facts_queryset(queue, criteria)
    if unfolded_after is not None:
        queryset = queryset.filter(pk__gt=unfolded_after, fact__isnull=True)
    fields = FIELDS + [f"answer_{i}" for i in range(len(keys))]
    table = _numbers(queryset.values_list(*fields), len(fields))
    return _facts_from(list(table.T), keys, criteria=bool(criteria))


def fact_answer_keys(criteria: list[tuple[str, str]]) -> list[str]:
    """The answer columns ``criteria`` give, in the order facts store them."""
    return list(answer_columns(criteria))


#: The stored facts' columns, in ``FIELDS``' order (gold comes from the items, not the facts),
#: each a float8 with NaN for NULL; then ``answers``' numbers, one column each.
STORED = ["judgment_id", "rater_id", "item_id", "0", "active", "preference", "swapped", "created"]
STORED += ["CASE WHEN both_bad THEN 1 ELSE 0 END"]


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """On PostgreSQL, outside a transaction: the reads inside see one snapshot (REPEATABLE READ,
    read only), so a fold or a submit committing meanwhile is wholly seen or wholly not."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def stored_judgment_facts(*, queue: Queue, criteria: list[tuple[str, str]] | None = None) -> JudgmentFacts:
    """``judgment_facts(queue=queue, criteria=criteria)``, the same arrays, read from the stored
    facts; see ``_stored_judgment_facts`` (the reads share one snapshot where they can)."""
    with _one_snapshot():
        return _stored_judgment_facts(queue=queue, criteria=criteria)


def _stored_judgment_facts(*, queue: Queue, criteria: list[tuple[str, str]] | None = None) -> JudgmentFacts:
    """``judgment_facts(queue=queue, criteria=criteria)``, the same arrays, read from the stored
    facts (their packed chunks, ``JudgmentFactChunk``: a few values, no joins) plus the judgments
    not folded in yet (those after the queue's ``folded_through``, computed as ``judgment_facts``
    does).

    When the queue has fewer facts than its chunks hold (an undo deleted a judgment since), the
    chunks' rows are kept only where the fact still exists. Falls back to the full computation
    when the facts cannot be trusted to be complete: the queue was never folded, its facts carry
    other criteria's answers, or the stored and new judgments together are not as many as the
    items' ``judged`` counters say (a judgment committed after a fold passed its id, or counters
    that drifted)."""
    from labeling.models import JudgmentFact, JudgmentFactsState

    keys = fact_answer_keys(criteria or [])
    state = JudgmentFactsState.objects.filter(queue=queue).first()
    if state is None or state.answer_keys != keys:
        return judgment_facts(queue=queue, criteria=criteria)
    width = len(STORED) + len(keys)
    table, packed = unpacked_chunks(queue.pk, width)
    facts = JudgmentFact.objects.filter(queue=queue).count()
    if facts != packed:
        present = stored_fact_columns(queue.pk, 0, ids_only=True)[0]
        table = table[np.isin(table[:, 0], present)]
        if len(table) != facts:  # facts outside every chunk: read the rows themselves
            table = np.column_stack(stored_fact_columns(queue.pk, len(keys))) if facts else table
    stored = list(table.T)
    # Above the watermark, judgments folded already (made under SETTLE_SECONDS before the fold)
    # are in the chunks: only those without a fact are added.
    tail = judgment_facts(queue=queue, criteria=criteria, unfolded_after=state.folded_through)
    judged = queue.items.aggregate(n=Sum("judged"))["n"] or 0
    if len(table) + len(tail.ids) != judged:
        return judgment_facts(queue=queue, criteria=criteria)
    if len(tail.ids):
        more = [tail.ids, tail.rater, tail.item, tail.gold, tail.active, tail.preference, tail.swapped]
        more += [tail.created, tail.both_bad] + [(tail.answers or {})[key] for key in keys]
        stored = [np.concatenate([old, new.astype(float)]) for old, new in zip(stored, more, strict=True)]
    gold = np.array(queue.items.filter(is_gold=True).values_list("pk", flat=True), dtype=np.int64)
    return _facts_from(stored, keys, criteria=bool(criteria), gold=gold)


def _binary_rows(cursor: Any, sql: str, params: list[Any]) -> list[Any]:
    """The rows of ``sql`` through psycopg's own cursor, in binary (bytea as it is, not as hex
    text) unless it binds on the client (behind a transaction-mode pooler), which cannot."""
    import psycopg  # PostgreSQL only

    raw = cursor.cursor
    raw.execute(sql, params, binary=not isinstance(raw, psycopg.ClientCursor))
    return list(raw.fetchall())


#: How a chunk packs its numbers (``JudgmentFactChunk.data``).
PACKED = np.dtype("<f8")


def pack_facts(columns: list[np.ndarray]) -> bytes:
    """Columns of equal length as a chunk's ``data``: row after row, little-endian float64."""
    return np.column_stack(columns).astype(PACKED).tobytes() if len(columns[0]) else b""


def unpacked_chunks(queue_id: int, width: int) -> tuple[np.ndarray, int]:
    """The queue's chunks, unpacked into one rows x ``width`` table (in chunk order), and how many
    rows they hold. PostgreSQL sends the values in binary (no hex text to decode)."""
    sql = "SELECT rows, data FROM labeling_judgmentfactchunk WHERE queue_id = %s ORDER BY number"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            found = _binary_rows(cursor, sql, [queue_id])
        else:
            cursor.execute(sql, [queue_id])
            found = cursor.fetchall()
    parts = [np.frombuffer(bytes(data), PACKED).reshape(int(rows), width) for rows, data in found if rows]
    table = np.concatenate(parts) if parts else np.zeros((0, width))
    return table, len(table)


#: One float8 of an ``array_send`` array: its length (always 8: NULLs are NaN) and its value.
_SENT_FLOAT8 = np.dtype([("length", ">i4"), ("value", ">f8")])
#: ``array_send``'s header for a one-dimensional array: dimensions, flags, element type, size,
#: lower bound.
_SENT_HEADER = 20


def stored_fact_columns(
    queue_id: int, answers: int, *, chunk: int | None = None, ids_only: bool = False
) -> list[np.ndarray]:
    """The queue's stored fact rows (those of fold ``chunk`` when given) as float columns
    (``STORED``, then ``answers`` answer columns; only the judgment ids with ``ids_only``), by
    judgment id. PostgreSQL sends each column as one binary array (``array_send`` of a float8
    ``array_agg``): a million rows cost a few values, not a million messages."""
    columns = (
        STORED[:1] if ids_only else STORED + [f"split_part(answers, ' ', {i + 1})" for i in range(answers)]
    )
    where, params = "queue_id = %s", [queue_id]
    if chunk is not None:
        where, params = where + " AND chunk = %s", [queue_id, chunk]
    # Constant column expressions; the queue and chunk are parameters.
    rows = f"SELECT * FROM labeling_judgmentfact WHERE {where} ORDER BY judgment_id"  # noqa: S608
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"array_send(array_agg(COALESCE(({c})::float8, 'NaN')))" for c in columns)
        with connection.cursor() as cursor:
            found = _binary_rows(cursor, f"SELECT {arrays} FROM ({rows}) AS facts", params)  # noqa: S608
        sent = found[0] if found else None
        if sent is None or sent[0] is None:
            return [np.zeros(0) for _ in columns]
        return [
            np.frombuffer(bytes(b), _SENT_FLOAT8, offset=_SENT_HEADER)["value"].astype(float) for b in sent
        ]
    plain = STORED[:1] if ids_only else STORED + ["answers"]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(plain)} FROM ({rows}) AS facts", params)  # noqa: S608
        fetched = cursor.fetchall()
    if not fetched:
        return [np.zeros(0) for _ in columns]
    if ids_only:
        return [np.array([row[0] for row in fetched], dtype=float)]
    table = [[*row[:-1], *(float(x) for x in row[-1].split())] for row in fetched]
    return list(np.array(table, dtype=float).reshape(-1, len(columns)).T)
