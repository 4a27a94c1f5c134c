"""The API's request parsers: DRF's, with two limits every route gets.

- **Depth.** JSON nested deeper than ``MAX_DEPTH`` levels is refused with 400 before anything
  reads it (deeply nested input made Python's JSON reader, and then any code walking the value,
  raise ``RecursionError``: a 500 from an anonymous request).
- **Control characters.** A text value (a JSON string or key anywhere in the body, a form field)
  holding a control character other than tab, line feed or carriage return is refused with 400
  naming the field. PostgreSQL cannot store NUL in text or JSON, and SQLite would store it: the
  same refusal on both databases, before any service runs. Uploaded files are checked by the
  import that reads them.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers

#: Deeper JSON is refused: no Preflab route takes more than a handful of levels.
MAX_DEPTH = 32
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _walk(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(path, problem) for each value too deep or holding a control character (iterative in spirit:
    the depth is bounded by ``MAX_DEPTH`` before any recursion could run away)."""
    if depth > MAX_DEPTH:
        yield path or "(body)", f"nested deeper than {MAX_DEPTH} levels"
        return
    if isinstance(value, str):
        if _CONTROL.search(value):
            yield path or "(body)", _control_message(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key = str(key)
            child = f"{path}.{key}" if path else key
            if _CONTROL.search(key):
                yield child, "a key " + _control_message(key)
                continue
            yield from _walk(item, child, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]", depth + 1)


def _control_message(text: str) -> str:
    found = _CONTROL.search(text)
    code = ord(found.group(0)) if found else 0
    return f"contains the control character U+{code:04X}; only tab and line breaks are allowed in text"


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
            data = json.loads(text, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}")
        _refuse_problems(data)
        return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


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
