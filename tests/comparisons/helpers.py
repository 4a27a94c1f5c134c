from __future__ import annotations

import json
from typing import Any


def jsonl(*rows: Any) -> bytes:
    """Rows as JSONL bytes; a str row is written as is (for broken lines)."""
    return b"".join((row if isinstance(row, str) else json.dumps(row)).encode() + b"\n" for row in rows)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
