"""The API's request parsers: DRF's, with the limits every route gets.

- **Depth.** JSON nested deeper than ``MAX_DEPTH`` levels is refused with 400 before anything
  reads it (deeply nested input made Python's JSON reader, and then any code walking the value,
  raise ``RecursionError``: a 500 from an anonymous request).
- **Control characters.** A text value (a JSON string or key anywhere in the body, a form field)
  holding a control character other than tab, line feed or carriage return is refused with 400
  naming the field. PostgreSQL cannot store NUL in text or JSON, and SQLite would store it: the
  same refusal on both databases, before any service runs. Uploaded files are checked by the
  import that reads them.
- **Unpaired surrogates and infinite numbers.** A JSON string may write ``"\\ud800"``, which is
  no character (not UTF-8: no column stores it), and a number may be too large for a float
  (``1e400`` reads as infinity): both are refused with 400 too.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers

from comparisons.textchecks import MAX_DEPTH, value_problems


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, problem) for each value too deep or holding a control character or lone surrogate:
    the same checks, limit and messages as every import line (``comparisons.textchecks``)."""
    for field, problem in value_problems(value, path):
        yield field or "(body)", problem


def _refuse_problems(data: Any) -> None:
    """Raise a 400 naming the first field that is too deep or holds a control character."""
    problem = next(_walk(data, ""), None)
    if problem is not None:
        field, message = problem
        raise exceptions.ValidationError({field: [message]})


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing deep nesting and control characters with 400 naming the field."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"JSON parse error - not {encoding} text ({exc.reason})")
        if _nesting(text) > MAX_DEPTH + 1:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        try:
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}")
        _refuse_problems(data)
        return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number such as 1e400 reads as infinity, which no number column stores: refuse it."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _nesting(text: str) -> int:
    """How deep the brackets of a JSON text go, outside strings (a linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH + 1:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


class FormParser(parsers.FormParser):
    """DRF's form parser, refusing control characters in any field with 400 naming it."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        _refuse_problems(_fields(data))
        return data


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser, refusing control characters in any (non-file) field."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parsed = super().parse(stream, media_type, parser_context)
        _refuse_problems(_fields(parsed.data))
        return parsed


def _fields(data: Any) -> dict[str, Any]:
    """A QueryDict as {name: value}, or {name: [values]} for a repeated field."""
    return {key: values[0] if len(values) == 1 else values for key, values in data.lists()}


def query_problem(query: Any) -> tuple[str, str] | None:
    """The first query parameter holding a control character, as (field, problem), or None."""
    return next(_walk(_fields(query), ""), None)
