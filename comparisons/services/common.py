"""What the writes of this package share: batching, the one pass of a JSONL import, its result.

Rows are written ``BATCH_SIZE`` to an INSERT and ids read ``BATCH_SIZE`` to an ``IN (...)``
(:func:`_chunks`), well under SQLite's variable limit and cheap on PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from django.db import IntegrityError, transaction

from comparisons.importing import ErrorCollector, parse_jsonl
from comparisons.models import Candidate, Prompt
from labeling.errors import Conflict

# Rows per INSERT and ids per IN (...): well under SQLite's variable limit, cheap on PostgreSQL.
BATCH_SIZE = 500

_T = TypeVar("_T")
_R = TypeVar("_R")

_CONCURRENT_WRITE = (
    "another import wrote some of the same rows at the same time; nothing was imported, run it again"
)


@dataclass(frozen=True)
class ImportResult:
    """What an import did. ``prompts``/``candidates`` follow the file's lines (one per line)."""

    created: int
    existing: int
    prompts: list[Prompt] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)


def _chunks(items: Iterable[_T], size: int = BATCH_SIZE) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class ImportPlan(Protocol):
    """What an import's database checks resolved: the rows to write, written by ``save``."""

    def save(self) -> ImportResult: ...


def jsonl_import(
    *,
    stream: Iterable[bytes | str],
    parse: Callable[[Any], _R],
    check: Callable[[list[tuple[int, _R]], ErrorCollector], ImportPlan],
) -> ImportResult:
    """The one pass every JSONL import makes, all or nothing.

    1. Every line is read and checked by ``parse`` (``comparisons.importing``); a bad line is
       recorded and the reading goes on.
    2. ``check`` resolves every line that parsed against the database (unknown ids, conflicts with
       stored rows), reading only, and records its errors with the same collector.
    3. Any error at all: ImportFailed lists them (the first MAX_REPORTED_ERRORS in file order, all
       counted), so one upload reports every problem of the file, and nothing is written.
    4. Otherwise the plan is saved. Steps 2 to 4 share one transaction; a concurrent import that
       wrote the same unique rows first makes it a Conflict, with nothing written.
    """
    errors = ErrorCollector()
    records = parse_jsonl(stream, parse, errors)
    try:
        with transaction.atomic():
            plan = check(records, errors)
            errors.raise_if_any()
            return plan.save()
    except IntegrityError:
        raise Conflict(_CONCURRENT_WRITE)
