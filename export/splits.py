"""Splits by prompt: a prompt's split is a pure function of the prompt and the dataset name.

``bucket = first 8 bytes of SHA-256(dataset name + NUL + the prompt's split key) / 2**64``, a
number in [0, 1). ``test`` takes buckets below ``test_fraction``, ``validation`` the next
``validation_fraction``, ``train`` the rest. The split key is the prompt's content hash, the
SHA-256 of its messages (``comparisons.models.messages_hash``), so the split never depends on
database ids, row order or other prompts: a prompt in ``test`` stays in ``test`` in every later
snapshot of the same dataset name, and growing ``test_fraction`` only moves prompts *into* test.
With ``redteam_split``, prompts whose source is red-team go to their own held-out ``redteam`` split.
Every pair or ranking of one prompt lands in that prompt's split: splits never cut a prompt.

Conversations are split by conversation, never by turn. A conversation turn's prompt (source
``conversation``) is the conversation so far, system prompt first; its split key is the content
hash of its *first user message* alone, which every turn of one session shares (and two sessions
that share a prompt share their first user message too), so every turn of a session, and the
session's ``sft`` row, land in one split, and the split is still a function of the prompt alone.
A conversation opening with the same message as an imported one-message prompt shares its split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from comparisons.models import Prompt, messages_hash

SPLIT_DOC = (
    "bucket = int(sha256(name + '\\0' + split_key)[:8 bytes]) / 2**64, where split_key is the "
    "prompt's content_hash, or for a conversation turn's prompt (source 'conversation') the "
    "content hash of its first user message alone, so every turn of a conversation shares one "
    "split; test if bucket < test_fraction, validation if < test_fraction + validation_fraction, "
    "else train; red-team prompts in a held-out 'redteam' split when redteam_split is on"
)
SPLIT_ORDER = ("train", "validation", "test", "redteam")


def prompt_bucket(*, name: str, content_hash: str) -> float:
    digest = hashlib.sha256(f"{name}\0{content_hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def prompt_split_key(*, content_hash: str, source: str, messages: Sequence[dict[str, Any]]) -> str:
    """What a prompt's bucket is hashed from (see the module docstring)."""
    if source == Prompt.Source.CONVERSATION:
        first = next((m for m in messages if m.get("role") == "user"), None)
        if first is not None:
            return messages_hash([{"role": "user", "content": first.get("content", "")}])
    return content_hash


REDTEAM_PAIRS_SPLIT_DOC = (
    "a red-team training pair is split by its attack's family, not its prompt: bucket = "
    "int(sha256(name + '\\0' + 'redteam-family' + '\\0' + family)[:8 bytes]) / 2**64, then test / "
    "validation / train as above, so every pair of one family (every turn of one session) lands in "
    "one split; the held-out red-team test set (the redteam_eval view) never holds their families"
)


def family_split(*, name: str, family: str, options: dict[str, Any]) -> str:
    """The split of a red-team training pair: by its attack's family (``REDTEAM_PAIRS_SPLIT_DOC``)."""
    bucket = prompt_bucket(name=name, content_hash=f"redteam-family\0{family}")
    test = float(options.get("test_fraction", 0.0))
    if bucket < test:
        return "test"
    if bucket < test + float(options.get("validation_fraction", 0.0)):
        return "validation"
    return "train"


def prompt_split(
    *,
    name: str,
    content_hash: str,
    source: str,
    messages: Sequence[dict[str, Any]],
    options: dict[str, Any],
) -> str:
    """The split of one prompt (see the module docstring)."""
    if options.get("redteam_split") and source == Prompt.Source.REDTEAM:
        return "redteam"
    key = prompt_split_key(content_hash=content_hash, source=source, messages=messages)
    bucket = prompt_bucket(name=name, content_hash=key)
    test = float(options.get("test_fraction", 0.0))
    if bucket < test:
        return "test"
    if bucket < test + float(options.get("validation_fraction", 0.0)):
        return "validation"
    return "train"
