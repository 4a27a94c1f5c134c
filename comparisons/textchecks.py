"""The two checks every imported value passes before anything reads it: depth and control characters.

Pure (no Django). ``labeling/parsers.py`` applies the same limits to the API's JSON bodies and form
fields; an import reads its uploaded file itself, so each line (or row) of it is checked here:

- **Depth.** A value nested deeper than :data:`MAX_DEPTH` levels is refused (Python's JSON reader,
  and any code walking such a value, would raise ``RecursionError``). The walk stops at the limit,
  so it never recurses further than that itself.
- **Control characters.** A string (a value or a key, anywhere in the value) holding a control
  character other than tab, line feed or carriage return is refused, naming the field: PostgreSQL
  cannot store NUL in text or JSON and SQLite would store it, so both databases refuse the same.
  So is an unpaired surrogate (a JSON ``"\\ud800"`` escape), which is not text in any encoding.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

#: Deeper values are refused: no import field takes more than a handful of levels.
MAX_DEPTH = 32
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

DEPTH_MESSAGE = f"nested deeper than {MAX_DEPTH} levels"


def control_message(text: str) -> str:
    """Why ``text`` is refused: the first control character (or lone surrogate) it holds, as U+XXXX."""
    found = CONTROL_CHARACTERS.search(text)
    code = ord(found.group(0)) if found else 0
    if 0xD800 <= code <= 0xDFFF:
        return f"contains the unpaired surrogate U+{code:04X}, which is not text"
    return f"contains the control character U+{code:04X}; only tab and line breaks are allowed in text"


def text_problem(text: str) -> str | None:
    """Why a string is refused, or None."""
    return control_message(text) if CONTROL_CHARACTERS.search(text) else None


def printable(text: str) -> str:
    """``text`` with each control character and lone surrogate written as ``\\uXXXX``: a key or
    column name fit to show in an error (and to store: PostgreSQL refuses NUL)."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def value_problems(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(field path, problem) for each part of ``value`` too deep or holding a control character.

    Paths read as in the import docs: ``messages[1].content``, ``metadata.key``. ``depth`` counts
    the levels above ``value``; the walk never goes below :data:`MAX_DEPTH`.
    """
    if depth > MAX_DEPTH:
        yield path, DEPTH_MESSAGE
        return
    if isinstance(value, str):
        if CONTROL_CHARACTERS.search(value):
            yield path, control_message(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key = str(key)
            child = f"{path}.{printable(key)}" if path else printable(key)
            if CONTROL_CHARACTERS.search(key):
                yield child, "a key " + control_message(key)
                continue
            yield from value_problems(item, child, depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from value_problems(item, f"{path}[{i}]", depth + 1)


def first_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first (field path, problem) of :func:`value_problems`, or None when the value is clean."""
    return next(value_problems(value, path), None)
