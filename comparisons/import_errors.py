"""The errors of an import and how they are collected and shown. Pure: no database access.

An import reads every line (or row) of its file, collects each problem as a :class:`LineError`
(line and field), and raises :class:`ImportFailed` with all of them before anything is written.
``comparisons.importing`` re-exports every name here.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from labeling.errors import ApplicationError

# How many line errors an ImportFailed carries (the total is always counted).
MAX_REPORTED_ERRORS = 20


class InvalidField(ApplicationError):
    """A value a user gave is wrong; ``field`` is its path (``messages[1].role``), ``reason`` says why."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason, field=field)
        self.reason = reason


@dataclass(frozen=True)
class LineError:
    """One problem in an imported file; ``line`` is 1-based, None for the file as a whole.

    ``unit`` is how the message names the place: a ``line`` of a JSONL or CSV file, a ``row`` of
    a Parquet or Arrow table (the API's JSON calls both ``line``).
    """

    line: int | None
    field: str | None
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}: " if self.line is not None else ""
        what = f"{self.field}: " if self.field else ""
        return f"{where}{what}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


class ImportFailed(ApplicationError):
    """An import was rejected and nothing was written.

    ``message`` names the first error's line and field; ``errors`` holds up to
    ``MAX_REPORTED_ERRORS`` of them in file order and ``error_count`` counts them all.
    """

    def __init__(self, errors: list[LineError], *, error_count: int | None = None) -> None:
        first = errors[0]
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.error_count = error_count if error_count is not None else len(errors)
        self.line = first.line
        message = str(first)
        if self.error_count > 1:
            message += f" (and {self.error_count - 1} more error{'s' if self.error_count > 2 else ''})"
        super().__init__(message, field=first.field)

    def as_dict(self) -> dict[str, Any]:
        """The API's 400 body: ``detail``, ``line``, ``field``, ``errors`` (list), ``error_count``."""
        return {
            "detail": self.message,
            "line": self.line,
            "field": self.field,
            "errors": [e.as_dict() for e in self.errors],
            "error_count": self.error_count,
        }


def file_error(message: str, *, field: str | None = "file") -> ImportFailed:
    """An ImportFailed about the file as a whole (no line)."""
    return ImportFailed([LineError(None, field, message)])


@dataclass
class ErrorCollector:
    """Collects line errors, keeping the first ``MAX_REPORTED_ERRORS`` in file order and counting all.

    Errors may be added in any order (the line checks first, then the database checks of the lines
    that parsed): the ones kept are always those of the earliest lines, file-wide errors first.
    An error added as InvalidField names a field of the import: ``rename`` turns it into the
    file's own column (a column mapping), and ``unit`` names the place (``line``, ``row``).
    """

    errors: list[LineError] = field(default_factory=list)
    count: int = 0
    unit: str = "line"
    rename: Callable[[str | None], str | None] | None = None

    def add(self, line: int | None, error: InvalidField | LineError) -> None:
        self.count += 1
        if isinstance(error, InvalidField):
            name = self.rename(error.field) if self.rename is not None else error.field
            error = LineError(line, name, error.reason, self.unit)
        key = _error_order(error)
        if len(self.errors) >= MAX_REPORTED_ERRORS and key >= _error_order(self.errors[-1]):
            return
        bisect.insort(self.errors, error, key=_error_order)
        del self.errors[MAX_REPORTED_ERRORS:]

    def raise_if_any(self) -> None:
        """Raise ImportFailed with every error collected so far (none: return)."""
        if self.count:
            raise ImportFailed(self.errors, error_count=self.count)


def _error_order(error: LineError) -> tuple[bool, int]:
    return (error.line is not None, error.line or 0)


def shown_value(value: Any, *, limit: int = 40) -> str:
    """A value as a user writes it in JSON, for an error message: ``"bot"``, ``3``, ``["a"]``.

    Strings are double-quoted (never Python's ``'bot'``); long values are cut to ``limit`` characters.
    """
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_values(values: Iterable[Any], *, most: int = 20) -> str:
    """Values for an error message, each as :func:`shown_value` writes it, joined by commas:
    ``"a", "b", 3``; past ``most`` of them the rest are counted (``... and 4 more``)."""
    items = list(values)
    text = ", ".join(shown_value(v) for v in items[:most])
    return text + (f" ... and {len(items) - most} more" if len(items) > most else "")
