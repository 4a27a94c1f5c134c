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


def _flagged(flag: str) -> Q:
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
                When(_flagged(key), then=Value(1)),
                default=_JsonAt("criteria", [key], "boolean"),
                output_field=IntegerField(),
            )
    return columns


def judgment_facts(*, queue: Queue, criteria: list[tuple[str, str]] | None = None) -> JudgmentFacts:
    """The queue's judgments as arrays, in one query (with the answers to ``criteria``, (key,
    kind) pairs, when given)."""
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
            both_bad=Case(When(_flagged("both_bad"), then=Value(1)), default=Value(0)),
            **{name: extra[key] for name, key in names.items()},
        )
        .order_by()
    )
    fields = FIELDS + list(names)
    table = _numbers(queryset.values_list(*fields), len(fields))
    ids, rater, item, gold, active, preference, swapped, created, both_bad = table[:, : len(FIELDS)].T
    return JudgmentFacts(
        ids=ids.astype(np.int64),
        rater=rater.astype(np.int64),
        item=item.astype(np.int64),
        gold=gold.astype(bool),
        active=active,
        preference=preference,
        swapped=swapped,
        created=created,
        both_bad=both_bad.astype(bool),
        answers={key: table[:, len(FIELDS) + i] for i, key in enumerate(names.values())}
        if criteria
        else None,
    )
