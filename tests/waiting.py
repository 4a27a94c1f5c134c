"""Waiting on processes that tests start (workers, the demo command)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_for(
    condition: Callable[[], object], timeout: float, what: str, log: Path, poll: float = 0.05
) -> None:
    """Return once ``condition()`` is true; else fail after ``timeout`` s, quoting the end of ``log``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()[-3000:]}")
