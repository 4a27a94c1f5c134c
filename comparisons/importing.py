"""Reading an import's lines: size limits, JSONL, and the one parse pass. Pure: no database access.

The services in ``comparisons.services`` build on this: they read every line (``comparisons.readers``
reads the other formats into the same lines), collect the errors, and write nothing unless the
whole file is valid. This module also re-exports the names of ``comparisons.import_errors`` (the
errors) and ``comparisons.records`` (the values and records a line holds), which used to live here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import IO, Any, TypeVar

from .import_errors import (
    MAX_REPORTED_ERRORS,
    ErrorCollector,
    ImportFailed,
    InvalidField,
    LineError,
    file_error,
    shown_value,
    shown_values,
)
from .records import (
    MAX_GENERATOR_NAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_SAMPLE_INDEX,
    MAX_TAG_LENGTH,
    ROLES,
    CandidateRecord,
    PromptRecord,
    parse_candidate_line,
    parse_prompt_line,
    split_tags,
    validate_identifier,
    validate_messages,
    validate_tags,
    validate_text,
)
from .textchecks import DEPTH_MESSAGE, MAX_DEPTH, first_problem

__all__ = [
    "MAX_GENERATOR_NAME_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_REPORTED_ERRORS",
    "MAX_SAMPLE_INDEX",
    "MAX_TAG_LENGTH",
    "ROLES",
    "CandidateRecord",
    "ErrorCollector",
    "ImportFailed",
    "InvalidField",
    "LineError",
    "PromptRecord",
    "file_error",
    "parse_candidate_line",
    "parse_prompt_line",
    "shown_value",
    "shown_values",
    "split_tags",
    "validate_identifier",
    "validate_messages",
    "validate_tags",
    "validate_text",
]

# Limits keep one import from holding a worker's memory hostage; a bigger dataset is split in files.
#: The file as uploaded (a gzip, Parquet or zip file counts compressed).
MAX_FILE_BYTES = 50 * 1024 * 1024
#: What a compressed or columnar file may hold once read: gzip text, Arrow data, a zip's members.
MAX_UNPACKED_BYTES = 4 * MAX_FILE_BYTES
MAX_LINE_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024


def iter_chunks(fileobj: Any) -> Iterator[bytes]:
    """Chunks of an uploaded file (``.chunks()``), an open binary file, or a request stream."""
    if hasattr(fileobj, "chunks"):
        yield from fileobj.chunks()
        return
    reader: IO[bytes] = fileobj
    yield from iter(partial(reader.read, READ_CHUNK_BYTES), b"")


def split_lines(
    stream: Iterable[bytes | str], *, limit: int | None = None, keep_ends: bool = False
) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw line) from chunks of any size, without the line ending
    (``keep_ends``: with ``\\n``, a ``\\r`` before it dropped).

    Raises ImportFailed at once when the input passes ``limit`` bytes (default MAX_FILE_BYTES) or
    a line passes MAX_LINE_BYTES.
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    end = b"\n" if keep_ends else b""
    total = 0
    line_no = 0
    pending = b""
    for chunk in stream:
        data = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        total += len(data)
        if total > limit:
            raise file_error(f"larger than the {size_text(limit)} limit")
        parts = (pending + data).split(b"\n")
        pending = parts.pop()
        for part in parts:
            line_no += 1
            _check_line_length(line_no, part)
            yield line_no, part.removesuffix(b"\r") + end
        _check_line_length(line_no + 1, pending)
    if pending:
        yield line_no + 1, pending.removesuffix(b"\r")


_split_lines = split_lines  # the name it had


def _check_line_length(line_no: int, raw: bytes) -> None:
    if len(raw) > MAX_LINE_BYTES:
        raise ImportFailed(
            [LineError(line_no, None, f"longer than the {size_text(MAX_LINE_BYTES)} line limit")]
        )


def size_text(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} bytes"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every line; NaN and Infinity are refused (PostgreSQL's JSON cannot hold them).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads(text: str) -> Any:
    """One JSON value, refusing NaN/Infinity and nesting deep enough to exhaust the stack.

    Raises InvalidField (no field: the caller names it) with a readable reason.
    """
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidField(None, f"invalid JSON ({exc.msg} at column {exc.colno})")
    except ValueError as exc:
        raise InvalidField(None, f"invalid JSON ({exc})")
    except RecursionError:
        raise InvalidField(None, DEPTH_MESSAGE)


def needs_walk(text: str) -> bool:
    """Whether a JSON text may hold a value too deep or a control character: only then is the
    parsed value walked (a raw control character is already invalid JSON, so one can only come
    from an escape; fewer brackets than the limit cannot nest deeper than it)."""
    return (
        "\\u" in text
        or "\\b" in text
        or "\\f" in text
        or "\x7f" in text
        or text.count("[") + text.count("{") > MAX_DEPTH
    )


def read_jsonl(stream: Iterable[bytes | str], errors: ErrorCollector) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed value) for each non-blank line.

    Lines that are not UTF-8 or not JSON go to ``errors`` and are skipped, so one pass
    reports every bad line. A UTF-8 byte order mark on the first line is ignored. A value nested
    deeper than 32 levels, or holding a control character other than tab and line breaks, is
    refused with the field that does.
    """
    for line_no, raw in split_lines(stream):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.add(line_no, LineError(line_no, None, f"not valid UTF-8 (byte {exc.start + 1})"))
            continue
        if line_no == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        try:
            value = loads(text)
        except InvalidField as exc:
            errors.add(line_no, exc)
            continue
        if needs_walk(text) and (problem := first_problem(value, "")) is not None:
            errors.add(line_no, LineError(line_no, problem[0] or None, problem[1]))  # the file's own keys
            continue
        yield line_no, value


_R = TypeVar("_R")


def parse_rows(
    rows: Iterable[tuple[int, Any]],
    parse: Callable[[Any], _R],
    errors: ErrorCollector,
    *,
    empty: str = "has no JSON lines to import",
) -> list[tuple[int, _R]]:
    """Every row checked by ``parse``: (line number, record) for the good ones.

    A row ``parse`` refuses (InvalidField) goes to ``errors`` (which names the file's column for
    a mapped field) and the reading goes on, so one pass finds every bad line; nothing is raised
    for them here. Raises ImportFailed (``empty``) for a file without a single row, and whatever
    the reader raises at once (a file or line over its size limit).
    """
    records: list[tuple[int, _R]] = []
    for line_no, value in rows:
        try:
            records.append((line_no, parse(value)))
        except InvalidField as exc:
            errors.add(line_no, exc)
    if not records and not errors.count:
        raise file_error(empty)
    return records


def parse_jsonl(
    stream: Iterable[bytes | str], parse: Callable[[Any], _R], errors: ErrorCollector
) -> list[tuple[int, _R]]:
    """Every non-blank line of a JSONL stream checked by ``parse`` (:func:`parse_rows`)."""
    return parse_rows(read_jsonl(stream, errors), parse, errors)
