"""From models to hand-written SQL and back: column lists, and rows hydrated as the ORM would.

Each row is turned into model instances through ``Model.from_db`` with the fields' own
converters (JSON, dates, booleans on SQLite), exactly as a queryset would; values to insert are
prepared with the fields' own ``pre_save`` and ``get_db_prep_save``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.db.models.expressions import Col

#: A name in an insert's parameters: ``row_<attname>``, apart from the statement's own parameters.
INSERT_PREFIX = "row_"


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    """``"table"."column"`` for a field's column (``name`` is a column name, e.g. ``item_id``)."""
    return f"{table(model)}.{quote(name)}"


def select_list(*models: type[Model]) -> str:
    """Every concrete column of each model, table-qualified, in field order."""
    return ", ".join(
        column(model, str(field.column)) for model in models for field in model._meta.concrete_fields
    )


@functools.cache
def _converters(model: type[Model], vendor: str) -> list[tuple[Col, list[Callable[..., Any]]]]:
    # Converters depend on the field and the database vendor only; each is called with the
    # current connection, as the ORM calls them.
    found = []
    for field in model._meta.concrete_fields:
        col = field.get_col(model._meta.db_table)
        found.append((col, [*connection.ops.get_db_converters(col), *field.get_db_converters(connection)]))
    return found


@functools.cache
def _attnames(model: type[Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


def hydrate(model: type[Model], values: Sequence[Any]) -> Model:
    """One model instance from its columns, converted as the ORM converts them."""
    clean = []
    for (col, converters), value in zip(_converters(model, connection.vendor), values, strict=True):
        for convert in converters:
            value = convert(value, col, connection)
        clean.append(value)
    return model.from_db(connection.alias, _attnames(model), clean)


def hydrate_row(row: Sequence[Any], models: Sequence[type[Model]]) -> list[Model]:
    """One instance per model from a row whose select list is ``select_list(*models)``."""
    instances, start = [], 0
    for model in models:
        width = len(model._meta.concrete_fields)
        instances.append(hydrate(model, row[start : start + width]))
        start += width
    return instances


def is_bigint(value: int) -> bool:
    """Can ``value`` be a primary key? (A larger one from a URL would make the database raise.)"""
    return -(2**63) <= value < 2**63


@functools.cache
def insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    """The columns a hand-written insert writes: every concrete field but the primary key."""
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def insert_columns(model: type[Model]) -> tuple[list[str], list[str]]:
    """For each of ``insert_fields``: the quoted column, and a named placeholder
    (``%(row_<attname>)s``) cast to the column's type."""
    fields = insert_fields(model)
    return (
        [quote(str(f.column)) for f in fields],
        [f"%({INSERT_PREFIX}{f.attname})s::{f.cast_db_type(connection)}" for f in fields],
    )


def insert_values(obj: Model) -> dict[str, Any]:
    """The parameters of ``insert_columns`` for inserting ``obj``, prepared as the ORM prepares
    them: ``pre_save`` (so ``auto_now`` timestamps are set on ``obj``), then ``get_db_prep_save``."""
    return {
        f"{INSERT_PREFIX}{f.attname}": f.get_db_prep_save(f.pre_save(obj, True), connection)
        for f in insert_fields(type(obj))
    }


def mark_saved(obj: Model, pk: Any) -> None:
    """``obj`` was inserted by hand with primary key ``pk``: make it an ordinary saved instance."""
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias


def run(sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Execute ``sql`` with named parameters; its first row, or None."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description is not None else None
