"""What one imported line (or row) may hold, checked: values, and the records the services write.

Pure: no database access. Each ``parse_*_line`` takes one line as a dict of field names (the
reader has already applied the column mapping and the depth and control-character checks) and
returns a record, or raises InvalidField naming the field. ``comparisons.importing`` re-exports
every name here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .import_errors import InvalidField, shown_value
from .models import messages_hash
from .textchecks import text_problem

ROLES = ("system", "user", "assistant")
MAX_ID_LENGTH = 200
MAX_TAG_LENGTH = 100
MAX_GENERATOR_NAME_LENGTH = 200
MAX_SAMPLE_INDEX = 2**31 - 1


def validate_text(value: Any, *, field: str) -> str:
    """A non-empty string without control characters (tab and line breaks allowed), as given."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(field, "must be a non-empty string")
    if (problem := text_problem(value)) is not None:
        raise InvalidField(field, problem)
    return value


def validate_name(value: Any, *, field: str, max_length: int, what: str = "") -> str:
    """A short name (generator, dataset, collection): non-empty, stripped, at most ``max_length``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(field, f"must be a non-empty string{what}")
    validate_text(value, field=field)
    if len(value.strip()) > max_length:
        raise InvalidField(field, f"longer than {max_length} characters")
    return value.strip()


def validate_messages(value: Any, *, field: str = "messages") -> list[dict[str, str]]:
    """Check a conversation and return it as ``[{role, content}, ...]`` (other keys dropped).

    Non-empty list; roles system/user/assistant; content a non-empty string without control
    characters; at most one system message and only first; the last message from the user.
    """
    cleaned = validate_turns(value, field=field)
    if cleaned[-1]["role"] != "user":
        raise InvalidField(f"{field}[{len(cleaned) - 1}].role", "the last message must be from the user")
    return cleaned


def validate_turns(value: Any, *, field: str) -> list[dict[str, str]]:
    """:func:`validate_messages` without the rule on the last message (a whole conversation)."""
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
        content = validate_text(message.get("content"), field=f"{where}.content")
        cleaned.append({"role": role, "content": content})
    return cleaned


def validate_tags(value: Any, *, field: str = "tags") -> list[str]:
    """A list of non-empty strings, stripped, duplicates dropped, order kept."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidField(field, "must be a list of strings")
    tags: list[str] = []
    for i, tag in enumerate(value):
        tag = validate_name(tag, field=f"{field}[{i}]", max_length=MAX_TAG_LENGTH)
        if tag not in tags:
            tags.append(tag)
    return tags


def split_tags(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (comma-separated tags from a form or the command line)."""
    return validate_tags([t for t in (value or "").split(",") if t.strip()])


def validate_identifier(value: Any, *, field: str, max_length: int = MAX_ID_LENGTH) -> str:
    """An id given as a non-empty string or an integer, returned as a stripped string."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(field, "must be a non-empty string or an integer")
    return validate_name(value, field=field, max_length=max_length)


# --- line records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRecord:
    """One prompt to import: validated messages, optional external id and tags."""

    messages: list[dict[str, str]]
    external_id: str | None = None
    tags: list[str] = field(default_factory=list)
    #: Prompts of a namespace dedupe only among themselves (``messages_hash``).
    namespace: str = ""

    @property
    def content_hash(self) -> str:
        return messages_hash(self.messages, self.namespace)


@dataclass(frozen=True)
class CandidateRecord:
    """One imported response: to a prompt named by ``prompt_ref`` or given as ``prompt`` (a record)."""

    text: str
    generator: str
    prompt_ref: str | None = None
    prompt: PromptRecord | None = None
    sample_index: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def require_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidField(None, "each line must be a JSON object")
    return value


def conversation(obj: dict[str, Any]) -> list[dict[str, str]]:
    """``messages``, or ``prompt``: a string (one user message) or a list of messages."""
    if "messages" in obj and "prompt" in obj:
        raise InvalidField("prompt", 'give either "messages" or "prompt", not both')
    if "messages" in obj:
        return validate_messages(obj["messages"])
    if "prompt" in obj:
        text = obj["prompt"]
        if isinstance(text, list):
            return validate_messages(text, field="prompt")
        return [{"role": "user", "content": validate_text(text, field="prompt")}]
    raise InvalidField("messages", 'required (or "prompt" as a string)')


def merge_tags(default_tags: list[str] | None, tags: list[str]) -> list[str]:
    """``default_tags`` first, then the line's own (duplicates dropped, order kept)."""
    defaults = list(default_tags or [])
    return defaults + [t for t in tags if t not in defaults]


def parse_prompt_line(value: Any, *, default_tags: list[str] | None = None) -> PromptRecord:
    """``{"id"?, "messages": [...], "tags"?}`` or ``{"id"?, "prompt": "text" or [...], "tags"?}``."""
    obj = require_object(value)
    messages = conversation(obj)
    external_id = None if obj.get("id") is None else validate_identifier(obj["id"], field="id")
    tags = validate_tags(obj.get("tags"))
    return PromptRecord(messages=messages, external_id=external_id, tags=merge_tags(default_tags, tags))


def parse_candidate_line(value: Any) -> CandidateRecord:
    """``{"prompt_id" | "messages" | "prompt", "text", "generator", "sample_index"?, "metadata"?}``."""
    obj = require_object(value)
    prompt_ref: str | None = None
    prompt: PromptRecord | None = None
    if obj.get("prompt_id") is not None:
        if "messages" in obj or "prompt" in obj:
            raise InvalidField("prompt_id", 'give either "prompt_id" or "messages", not both')
        prompt_ref = validate_identifier(obj["prompt_id"], field="prompt_id")
    elif "messages" in obj or "prompt" in obj:
        prompt = PromptRecord(messages=conversation(obj))
    else:
        raise InvalidField("prompt_id", 'required (or "messages" with the conversation)')

    text = validate_text(obj.get("text"), field="text")
    generator = validate_name(
        obj.get("generator"),
        field="generator",
        max_length=MAX_GENERATOR_NAME_LENGTH,
        what=" (the model's name)",
    )
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
        generator=generator,
        prompt_ref=prompt_ref,
        prompt=prompt,
        sample_index=sample_index,
        metadata=metadata,
    )
