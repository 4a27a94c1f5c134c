"""Hand-written joins for the few reads every judgment makes, hydrated as the ORM would.

Building a ``select_related`` query costs the ORM more CPU than the database spends running it:
on the rater loop (token, gatekeeper, claim pick) that compile cost was the largest share of a
judgment's server time. These reads are written once per database vendor from the models' own
column lists, so a new field is picked up without touching the SQL, and each row is turned into
model instances through ``Model.from_db`` with the fields' own converters (JSON, dates, booleans
on SQLite), exactly as a queryset would. Everything else stays on the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def select_list(*models: type[Model]) -> str:
    """Every concrete column of each model, table-qualified, in field order."""
    return ", ".join(
        f"{table(model)}.{quote(str(field.column))}"
        for model in models
        for field in model._meta.concrete_fields
    )


def hydrate(model: type[Model], values: Sequence[Any]) -> Model:
    """One model instance from its columns, converted as the ORM converts them."""
    fields = model._meta.concrete_fields
    clean = []
    for field, value in zip(fields, values, strict=True):
        col = field.get_col(model._meta.db_table)
        for convert in [*connection.ops.get_db_converters(col), *field.get_db_converters(connection)]:
            value = convert(value, col, connection)
        clean.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], clean)


def fetch_one(sql: str, params: Sequence[Any], models: Sequence[type[Model]]) -> list[Any] | None:
    """Run ``sql`` (whose select list is ``select_list(*models)``) and hydrate its first row:
    one instance per model, in order, or None when there is no row. The caller wires relations."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    instances, start = [], 0
    for model in models:
        width = len(model._meta.concrete_fields)
        instances.append(hydrate(model, row[start : start + width]))
        start += width
    return instances
