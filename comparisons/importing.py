"""JSONL reading and line validation for imports. Pure: no database access.

The services in ``comparisons.services`` build on this: they read every line, collect the
errors here, and write nothing unless the whole file is valid.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any, TypeVar

from labeling.errors import ApplicationError

from .models import messages_hash

# Limits keep one request from holding a worker's memory hostage; a bigger dataset is split in files.
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
# How many line errors an ImportFailed carries (the total is always counted).
MAX_REPORTED_ERRORS = 20
READ_CHUNK_BYTES = 64 * 1024

ROLES = ("system", "user", "assistant")
MAX_ID_LENGTH = 200
MAX_TAG_LENGTH = 100
MAX_GENERATOR_NAME_LENGTH = 200
MAX_SAMPLE_INDEX = 2**31 - 1


class InvalidField(ApplicationError):
    """A value a user gave is wrong; ``field`` is its path (``messages[1].role``), ``reason`` says why."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason, field=field)
        self.reason = reason


@dataclass(frozen=True)
class LineError:
    """One problem in an imported file; ``line`` is 1-based, None for the file as a whole."""

    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
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


@dataclass
class ErrorCollector:
    """Collects line errors, keeping the first ``MAX_REPORTED_ERRORS`` in file order and counting all.

    Errors may be added in any order (the line checks first, then the database checks of the lines
    that parsed): the ones kept are always those of the earliest lines, file-wide errors first.
    """

    errors: list[LineError] = field(default_factory=list)
    count: int = 0

    def add(self, line: int | None, error: InvalidField | LineError) -> None:
        self.count += 1
        if isinstance(error, InvalidField):
            error = LineError(line, error.field, error.reason)
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


def iter_chunks(fileobj: Any) -> Iterator[bytes]:
    """Chunks of an uploaded file (``.chunks()``), an open binary file, or a request stream."""
    if hasattr(fileobj, "chunks"):
        yield from fileobj.chunks()
        return
    reader: IO[bytes] = fileobj
    yield from iter(partial(reader.read, READ_CHUNK_BYTES), b"")


def _split_lines(stream: Iterable[bytes | str]) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw line without its line ending) from chunks of any size.

    Raises ImportFailed at once when the input passes MAX_FILE_BYTES or a line passes MAX_LINE_BYTES.
    """
    total = 0
    line_no = 0
    pending = b""
    for chunk in stream:
        data = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        total += len(data)
        if total > MAX_FILE_BYTES:
            raise ImportFailed([LineError(None, "file", f"larger than the {_size(MAX_FILE_BYTES)} limit")])
        parts = (pending + data).split(b"\n")
        pending = parts.pop()
        for part in parts:
            line_no += 1
            _check_line_length(line_no, part)
            yield line_no, part.removesuffix(b"\r")
        _check_line_length(line_no + 1, pending)
    if pending:
        yield line_no + 1, pending.removesuffix(b"\r")


def _check_line_length(line_no: int, raw: bytes) -> None:
    if len(raw) > MAX_LINE_BYTES:
        raise ImportFailed([LineError(line_no, None, f"longer than the {_size(MAX_LINE_BYTES)} line limit")])


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} bytes"


def read_jsonl(stream: Iterable[bytes | str], errors: ErrorCollector) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed value) for each non-blank line.

    Lines that are not UTF-8 or not JSON go to ``errors`` and are skipped, so one pass
    reports every bad line. A UTF-8 byte order mark on the first line is ignored.
    """
    for line_no, raw in _split_lines(stream):
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
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            errors.add(line_no, LineError(line_no, None, f"invalid JSON ({exc.msg} at column {exc.colno})"))
            continue
        yield line_no, value


_R = TypeVar("_R")


def parse_jsonl(
    stream: Iterable[bytes | str], parse: Callable[[Any], _R], errors: ErrorCollector
) -> list[tuple[int, _R]]:
    """Every non-blank line of a JSONL stream checked by ``parse``: (line number, record) for the good ones.

    A line that is not UTF-8, not JSON, or that ``parse`` refuses (InvalidField) goes to ``errors``
    and the reading goes on, so one pass finds every bad line; nothing is raised for them here.
    Raises ImportFailed at once for a file or line over its size limit, and for a file without a
    single JSON line.
    """
    records: list[tuple[int, _R]] = []
    for line_no, value in read_jsonl(stream, errors):
        try:
            records.append((line_no, parse(value)))
        except InvalidField as exc:
            errors.add(line_no, exc)
    if not records and not errors.count:
        raise ImportFailed([LineError(None, "file", "has no JSON lines to import")])
    return records


# --- values ------------------------------------------------------------------------------------


def shown_value(value: Any, *, limit: int = 40) -> str:
    """A value as a user writes it in JSON, for an error message: ``"bot"``, ``3``, ``["a"]``.

    Strings are double-quoted (never Python's ``'bot'``); long values are cut to ``limit`` characters.
    """
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_values(values: Iterable[Any], *, most: int = 20) -> str:
    """Values for an error message, each as :func:`shown_value` writes it, joined by commas:
    ``"a", "b", 3``; past ``most`` of them the rest are counted (``... and 4 more``)."""
    items = list(values)
    text = ", ".join(shown_value(v) for v in items[:most])
    return text + (f" ... and {len(items) - most} more" if len(items) > most else "")


def validate_messages(value: Any, *, field: str = "messages") -> list[dict[str, str]]:
    """Check a conversation and return it as ``[{role, content}, ...]`` (other keys dropped).

    Non-empty list; roles system/user/assistant; content a non-empty string; at most one
    system message and only first; the last message from the user.
    """
    if not isinstance(value, list) or not value:
        raise InvalidField(field, "must be a non-empty list of {role, content} objects")
    cleaned: list[dict[str, str]] = []
    for i, message in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise InvalidField(where, "must be an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            got = "missing" if role is None else f"got {shown_value(role)}"
            raise InvalidField(f"{where}.role", f"must be one of {', '.join(ROLES)} ({got})")
        if role == "system" and i != 0:
            raise InvalidField(f"{where}.role", "a system message may only come first")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InvalidField(f"{where}.content", "must be a non-empty string")
        cleaned.append({"role": role, "content": content})
    if cleaned[-1]["role"] != "user":
        raise InvalidField(f"{field}[{len(cleaned) - 1}].role", "the last message must be from the user")
    return cleaned


def validate_tags(value: Any, *, field: str = "tags") -> list[str]:
    """A list of non-empty strings, stripped, duplicates dropped, order kept."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidField(field, "must be a list of strings")
    tags: list[str] = []
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidField(f"{field}[{i}]", "must be a non-empty string")
        tag = tag.strip()
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidField(f"{field}[{i}]", f"longer than {MAX_TAG_LENGTH} characters")
        if tag not in tags:
            tags.append(tag)
    return tags


def split_tags(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (comma-separated tags from a form or the command line)."""
    return validate_tags([t for t in (value or "").split(",") if t.strip()])


def validate_identifier(value: Any, *, field: str, max_length: int = MAX_ID_LENGTH) -> str:
    """An id given as a non-empty string or an integer, returned as a stripped string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(field, "must be a non-empty string or an integer")
    if len(value.strip()) > max_length:
        raise InvalidField(field, f"longer than {max_length} characters")
    return value.strip()


# --- line records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRecord:
    """One prompt to import: validated messages, optional external id and tags."""

    messages: list[dict[str, str]]
    external_id: str | None = None
    tags: list[str] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        return messages_hash(self.messages)


@dataclass(frozen=True)
class CandidateRecord:
    """One imported response: to a prompt named by ``prompt_ref`` or given as ``prompt`` (a record)."""

    text: str
    generator: str
    prompt_ref: str | None = None
    prompt: PromptRecord | None = None
    sample_index: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _require_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidField(None, "each line must be a JSON object")
    return value


def _conversation(obj: dict[str, Any]) -> list[dict[str, str]]:
    """``messages``, or ``prompt`` (a string) as a single user message."""
    if "messages" in obj and "prompt" in obj:
        raise InvalidField("prompt", 'give either "messages" or "prompt", not both')
    if "messages" in obj:
        return validate_messages(obj["messages"])
    if "prompt" in obj:
        text = obj["prompt"]
        if not isinstance(text, str) or not text.strip():
            raise InvalidField("prompt", "must be a non-empty string")
        return [{"role": "user", "content": text}]
    raise InvalidField("messages", 'required (or "prompt" as a string)')


def parse_prompt_line(value: Any, *, default_tags: list[str] | None = None) -> PromptRecord:
    """``{"id"?, "messages": [...], "tags"?}`` or ``{"id"?, "prompt": "text", "tags"?}``."""
    obj = _require_object(value)
    messages = _conversation(obj)
    external_id = None if obj.get("id") is None else validate_identifier(obj["id"], field="id")
    tags = validate_tags(obj.get("tags"))
    merged = list(default_tags or []) + [t for t in tags if t not in (default_tags or [])]
    return PromptRecord(messages=messages, external_id=external_id, tags=merged)


def parse_candidate_line(value: Any) -> CandidateRecord:
    """``{"prompt_id" | "messages" | "prompt", "text", "generator", "sample_index"?, "metadata"?}``."""
    obj = _require_object(value)
    prompt_ref: str | None = None
    prompt: PromptRecord | None = None
    if obj.get("prompt_id") is not None:
        if "messages" in obj or "prompt" in obj:
            raise InvalidField("prompt_id", 'give either "prompt_id" or "messages", not both')
        prompt_ref = validate_identifier(obj["prompt_id"], field="prompt_id")
    elif "messages" in obj or "prompt" in obj:
        prompt = PromptRecord(messages=_conversation(obj))
    else:
        raise InvalidField("prompt_id", 'required (or "messages" with the conversation)')

    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidField("text", "must be a non-empty string")
    generator = obj.get("generator")
    if not isinstance(generator, str) or not generator.strip():
        raise InvalidField("generator", "must be a non-empty string (the model's name)")
    if len(generator.strip()) > MAX_GENERATOR_NAME_LENGTH:
        raise InvalidField("generator", f"longer than {MAX_GENERATOR_NAME_LENGTH} characters")

    sample_index = obj.get("sample_index")
    if sample_index is not None and (
        not isinstance(sample_index, int)
        or isinstance(sample_index, bool)
        or not 0 <= sample_index <= MAX_SAMPLE_INDEX
    ):
        raise InvalidField("sample_index", "must be an integer >= 0")
    metadata = obj.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InvalidField("metadata", "must be a JSON object")
    return CandidateRecord(
        text=text,
        generator=generator.strip(),
        prompt_ref=prompt_ref,
        prompt=prompt,
        sample_index=sample_index,
        metadata=metadata,
    )
