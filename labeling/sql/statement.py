"""The hand-written statement: rendered once per database vendor, run with named parameters
(``labeling.sql.statements`` lists every one; read the rules there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import Model

from labeling.sql.hydrate import hydrate_row, run


class Statement:
    """A hand-written statement: rendered once per vendor, run with named parameters.

    ``hydrates`` lists the models whose columns open its select list, in order: ``instances``
    turns its first row into one instance of each.
    """

    def __init__(
        self, render: Callable[[], str], *, hydrates: tuple[type[Model], ...] = (), postgresql_only: bool
    ) -> None:
        self.name = render.__name__
        self.__doc__ = render.__doc__
        self.render = render
        self.hydrates = hydrates
        self.postgresql_only = postgresql_only
        self._sql: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<Statement {self.name}>"

    def sql(self) -> str:
        vendor = connection.vendor
        sql = self._sql.get(vendor)
        if sql is None:
            if self.postgresql_only and vendor != "postgresql":
                raise RuntimeError(f"{self.name} is PostgreSQL-only (this database is {vendor})")
            sql = self._sql[vendor] = self.render()
        return sql

    def row(self, **params: Any) -> tuple[Any, ...] | None:
        """Run it; its first row (or None)."""
        return run(self.sql(), params)

    def instances(self, **params: Any) -> list[Any] | None:
        """Run it; its first row as one instance of each ``hydrates`` model (or None)."""
        found = run(self.sql(), params)
        return None if found is None else hydrate_row(found, self.hydrates)


def statement(
    *, hydrates: tuple[type[Model], ...] = (), postgresql_only: bool = False
) -> Callable[[Callable[[], str]], Statement]:
    def wrap(render: Callable[[], str]) -> Statement:
        return Statement(render, hydrates=hydrates, postgresql_only=postgresql_only)

    return wrap
