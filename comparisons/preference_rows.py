"""One line of an existing preference dataset, checked: a prompt, the chosen and the rejected reply.

Pure: no database access. The common shapes are read as they come:

- TRL "standard": ``prompt``, ``chosen``, ``rejected`` as strings (the replies alone);
- TRL "conversational" and UltraFeedback binarized: ``chosen``/``rejected`` as message lists, the
  prompt either a separate ``prompt`` (a string or messages) that the lists may repeat first
  (UltraFeedback's lists hold the whole conversation), or implicit: everything before the last
  reply, which must be the same in both;
- Anthropic HH-RLHF: ``chosen``/``rejected`` as whole transcripts (``"\\n\\nHuman: ...\\n\\nAssistant:
  ..."``) sharing the prompt: they are split into messages, the last assistant turn being the
  reply. A ``prompt`` given as such a transcript (ending in ``Assistant:``) is split the same way.

The original label (which reply was chosen) is kept apart from the candidates, as the
``ImportedPreference`` the service writes; raters never see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .import_errors import InvalidField
from .readers import EXTRA
from .records import (
    PromptRecord,
    merge_tags,
    require_object,
    validate_identifier,
    validate_messages,
    validate_tags,
    validate_text,
    validate_turns,
)

_TRANSCRIPT_START = re.compile(r"\s*(Human|Assistant):")
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


@dataclass(frozen=True)
class PreferenceRecord:
    """One line: the prompt, the chosen and rejected replies' texts, the other columns' scalars."""

    prompt: PromptRecord
    chosen: str
    rejected: str
    metadata: dict[str, Any] = field(default_factory=dict)


def is_transcript(text: str) -> bool:
    """Whether ``text`` is written as an HH-RLHF transcript (``Human:`` / ``Assistant:`` turns)."""
    return bool(_TRANSCRIPT_START.match(text)) and bool(_TURN.search("\n\n" + text.lstrip()))


def transcript_turns(text: str, *, field: str) -> list[dict[str, str]]:
    """An HH-RLHF transcript as ``[{role, content}, ...]`` (Human -> user, Assistant -> assistant).

    Each turn's text is stripped of the spaces and line breaks around it; a last turn left empty
    (a prompt ending in ``Assistant:``) is kept empty for the caller to drop or refuse.
    """
    parts = _TURN.split("\n\n" + text.lstrip())
    if parts[0].strip():
        raise InvalidField(field, 'a transcript must start with "Human:" or "Assistant:"')
    return [
        {"role": _ROLES[role], "content": content.strip()}
        for role, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def parse_preference_line(value: Any, *, default_tags: list[str] | None = None) -> PreferenceRecord:
    """``{"prompt"?, "chosen", "rejected", "id"?, "tags"?}`` in any of the shapes above."""
    obj = require_object(value)
    for name in ("chosen", "rejected"):
        if obj.get(name) is None:
            raise InvalidField(name, "required (the reply, or the conversation ending in it)")
    if obj.get("prompt") is None:
        prompt, chosen = _split_conversation(obj["chosen"], field="chosen")
        rejected_prompt, rejected = _split_conversation(obj["rejected"], field="rejected")
        if rejected_prompt != prompt:
            turn = next(
                (i for i, (a, b) in enumerate(zip(prompt, rejected_prompt, strict=False)) if a != b),
                min(len(prompt), len(rejected_prompt)),
            )
            raise InvalidField(
                "rejected", f"its conversation before the reply differs from chosen's (from turn {turn + 1})"
            )
        messages = validate_messages(prompt, field="chosen")
    else:
        messages = _prompt_messages(obj["prompt"])
        chosen = _reply(obj["chosen"], messages, field="chosen")
        rejected = _reply(obj["rejected"], messages, field="rejected")
    external_id = None if obj.get("id") is None else validate_identifier(obj["id"], field="id")
    tags = merge_tags(default_tags, validate_tags(obj.get("tags")))
    return PreferenceRecord(
        prompt=PromptRecord(messages=messages, external_id=external_id, tags=tags),
        chosen=chosen,
        rejected=rejected,
        metadata=dict(obj.get(EXTRA) or {}),
    )


def _prompt_messages(value: Any) -> list[dict[str, str]]:
    """The ``prompt``: messages, a transcript (a trailing empty ``Assistant:`` dropped), or text."""
    if isinstance(value, list):
        return validate_messages(value, field="prompt")
    text = validate_text(value, field="prompt")
    if not is_transcript(text):
        return [{"role": "user", "content": text}]
    turns = transcript_turns(text, field="prompt")
    if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()
    return validate_messages(turns, field="prompt")


def _split_conversation(value: Any, *, field: str) -> tuple[list[dict[str, str]], str]:
    """A whole conversation (messages or a transcript): what comes before the last reply, and it."""
    if isinstance(value, str):
        text = validate_text(value, field=field)
        if not is_transcript(text):
            raise InvalidField(
                "prompt",
                "required when chosen and rejected are plain replies (or give them as message lists, "
                'or as "Human: ... Assistant: ..." transcripts)',
            )
        turns = transcript_turns(text, field=field)
    else:
        turns = validate_turns(value, field=field)
    if len(turns) < 2 or turns[-1]["role"] != "assistant":
        raise InvalidField(field, "must end with the assistant's reply, after the prompt")
    if not turns[-1]["content"].strip():
        raise InvalidField(field, "its last assistant reply is empty")
    return turns[:-1], turns[-1]["content"]


def _reply(value: Any, prompt: list[dict[str, str]], *, field: str) -> str:
    """The reply given with an explicit prompt: a string, or messages (which may repeat the prompt
    first, as UltraFeedback's do) ending in one assistant message."""
    if isinstance(value, str):
        return validate_text(value, field=field)
    turns = validate_turns(value, field=field)
    if len(turns) > len(prompt) and turns[: len(prompt)] == prompt:
        turns = turns[len(prompt) :]
    if len(turns) != 1 or turns[0]["role"] != "assistant":
        raise InvalidField(
            field, f"must hold one assistant reply after the prompt (got {len(turns)} other messages)"
        )
    return turns[0]["content"]
