"""What the writes of this package share: batching, the one pass of an import, its result.

Rows are written ``BATCH_SIZE`` to an INSERT and ids read ``BATCH_SIZE`` to an ``IN (...)``
(:func:`_chunks`), well under SQLite's variable limit and cheap on PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from django.db import IntegrityError, transaction

from comparisons.importing import ErrorCollector, InvalidField, parse_rows
from comparisons.models import Candidate, Prompt
from comparisons.readers import RowReader, columns_clean, format_clean
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
    """What an import did. ``prompts``/``candidates`` follow the file's lines (one per line; two
    candidates a line for a preference dataset). ``created``/``existing`` count what the import is
    of; ``counts`` has them for everything it wrote: ``{"prompts": {"created", "existing"}, ...}``."""

    created: int
    existing: int
    prompts: list[Prompt] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def _chunks(items: Iterable[_T], size: int = BATCH_SIZE) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class ImportPlan(Protocol):
    """What an import's database checks resolved: the rows to write, written by ``save``."""

    def save(self) -> ImportResult: ...


class ImportProgress(Protocol):
    """Told how an import goes (a background job records it): lines read, then the writing."""

    def lines_read(self, done: int) -> None: ...

    def writing(self) -> None: ...


def import_reader(
    *,
    kind: str,
    stream: Iterable[bytes | str] | None,
    file: Any,
    format: str | None,
    columns: Any,
    split: str | None = None,
    progress: ImportProgress | None = None,
) -> RowReader:
    """The reader of an import's data: ``file`` (a path, an uploaded or open file) or ``stream``
    (chunks of JSONL or CSV). ``format`` and ``columns`` are checked (InvalidField names them)."""
    data = file if file is not None else stream
    if data is None:
        raise InvalidField("file", "missing: give the file to import")
    name = str(getattr(file, "name", "") or "")
    return RowReader(
        data,
        kind=kind,
        format=format_clean(format, name=name),
        columns=columns_clean(columns, kind=kind),
        split=split or None,
        on_progress=progress.lines_read if progress is not None else None,
    )


def rows_import(
    *,
    reader: RowReader,
    parse: Callable[[Any], _R],
    check: Callable[[list[tuple[int, _R]], ErrorCollector], ImportPlan],
    progress: ImportProgress | None = None,
) -> ImportResult:
    """The one pass every import makes, all or nothing, whatever the file's format.

    1. Every line (row) is read and checked by ``parse`` (``comparisons.records``), after the
       reader's own checks (size, encoding, depth, control characters); a bad line is recorded
       and the reading goes on.
    2. ``check`` resolves every line that parsed against the database (unknown ids, conflicts with
       stored rows), reading only, and records its errors with the same collector.
    3. Any error at all: ImportFailed lists them (the first MAX_REPORTED_ERRORS in file order, all
       counted), so one upload reports every problem of the file, and nothing is written.
    4. Otherwise the plan is saved. Steps 2 to 4 share one transaction; a concurrent import that
       wrote the same unique rows first makes it a Conflict, with nothing written.
    """
    errors = ErrorCollector(rename=reader.rename)
    records = parse_rows(reader.rows(errors), parse, errors, empty=reader.empty_message)
    if progress is not None:
        progress.writing()
    try:
        with transaction.atomic():
            plan = check(records, errors)
            errors.raise_if_any()
            return plan.save()
    except IntegrityError:
        raise Conflict(_CONCURRENT_WRITE)
