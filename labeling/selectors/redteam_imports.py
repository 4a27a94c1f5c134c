"""Reads for the import of jailbreaks from the wild: the review queue a request names."""

from __future__ import annotations

from typing import Any

from labeling.errors import ApplicationError, id_or_none
from labeling.models import Queue


def redteam_queue_find(value: Any) -> Queue:
    """The red-team review queue named by ``value`` (its id or its name); 400 naming ``queue``."""
    text = str(value or "").strip()
    if not text:
        raise ApplicationError("queue: give the red-team review queue (its id or name)", field="queue")
    pk = id_or_none(text, Queue._meta.get_field("id")) if text.isascii() and text.isdigit() else None
    queue = Queue.objects.filter(pk=pk).first() if pk is not None else None
    if queue is None:
        queue = Queue.objects.filter(name=text).first()
    if queue is None:
        raise ApplicationError(f"queue: no queue with the id or name {text[:100]!r}", field="queue")
    return queue
