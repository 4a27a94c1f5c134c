"""What the writes of this package share: batching, the result of an import, the conflict message.

Rows are written ``BATCH_SIZE`` to an INSERT and ids read ``BATCH_SIZE`` to an ``IN (...)``
(:func:`_chunks`), well under SQLite's variable limit and cheap on PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from comparisons.models import Candidate, Prompt

# Rows per INSERT and ids per IN (...): well under SQLite's variable limit, cheap on PostgreSQL.
BATCH_SIZE = 500

_T = TypeVar("_T")

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
