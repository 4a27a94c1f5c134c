"""Splits by prompt: a prompt's split is a pure function of the prompt and the dataset name.

``bucket = first 8 bytes of SHA-256(dataset name + NUL + prompt content hash) / 2**64``, a number in
[0, 1). ``test`` takes buckets below ``test_fraction``, ``validation`` the next
``validation_fraction``, ``train`` the rest. The prompt content hash is the SHA-256 of its
messages (``comparisons.models.messages_hash``), so the split never depends on database ids, row
order or other prompts: a prompt in ``test`` stays in ``test`` in every later snapshot of the
same dataset name, and growing ``test_fraction`` only moves prompts *into* test. With
``redteam_split``, prompts whose source is red-team go to their own held-out ``redteam`` split.
Every pair or ranking of one prompt lands in that prompt's split: splits never cut a prompt.
"""

from __future__ import annotations

import hashlib
from typing import Any

from comparisons.models import Prompt

SPLIT_DOC = (
    "bucket = int(sha256(name + '\\0' + prompt.content_hash)[:8 bytes]) / 2**64; test if bucket < "
    "test_fraction, validation if < test_fraction + validation_fraction, else train; red-team prompts "
    "in a held-out 'redteam' split when redteam_split is on"
)
SPLIT_ORDER = ("train", "validation", "test", "redteam")


def prompt_bucket(*, name: str, content_hash: str) -> float:
    digest = hashlib.sha256(f"{name}\0{content_hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def prompt_split(*, name: str, content_hash: str, source: str, options: dict[str, Any]) -> str:
    """The split of one prompt (see the module docstring)."""
    if options.get("redteam_split") and source == Prompt.Source.REDTEAM:
        return "redteam"
    bucket = prompt_bucket(name=name, content_hash=content_hash)
    test = float(options.get("test_fraction", 0.0))
    if bucket < test:
        return "test"
    if bucket < test + float(options.get("validation_fraction", 0.0)):
        return "validation"
    return "train"
