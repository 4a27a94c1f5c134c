"""Request ids and structured logs.

``RequestIdMiddleware`` gives every request an id: the caller's ``X-Request-ID`` when it is a sane
token, else a new one. The id is held in a context variable for the life of the request, sent back
in the response's ``X-Request-ID`` header, and added to every log record by ``RequestIdFilter``.
After the response, the middleware logs one line (logger ``preflab.requests``, INFO) with the
method, the path without its query string, the status and the duration. Headers and bodies are
never logged. ``/healthz`` and ``/readyz`` are answered before this middleware, so probes log nothing.

Celery: ``on_before_task_publish`` puts the current id into the headers of each task message, and
``on_task_prerun``/``on_task_postrun`` set and reset it in the worker around the task, so a task's
log lines carry the id of the request that enqueued it, and tasks enqueued by tasks carry it on.
Eager tasks (tests) run inside the request and keep its id. The handlers are connected in
``labeling/celery.py``.

``PREFLAB_LOG_FORMAT=json`` writes one JSON object per line (``JsonFormatter``): ``time`` (ISO 8601,
UTC), ``level``, ``logger``, ``message``, ``request_id``, and any ``extra`` fields of the record.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
#: The task message header that carries the id from the publisher to the worker.
TASK_HEADER = "preflab_request_id"
#: What a caller's ``X-Request-ID`` may be: letters, digits, ``.``, ``_``, ``-``, at most 128.
_SANE_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("preflab_request_id", default=None)

request_logger = logging.getLogger("preflab.requests")


def sane_request_id(value: object) -> str | None:
    """``value`` when it is a string safe to log and echo as an id, else None."""
    if isinstance(value, str) and _SANE_TOKEN.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (the current one, or None) to every record that does not carry one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, request_id, extras.

    Django passes the request object itself as an ``extra`` (``django.request``, ``django.server``);
    its text holds the query string, so it is left out.
    """

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message", "request_id"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            reserved_attrs=[*RESERVED_ATTRS, "request", "taskName", "color_message"],
        )


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """Django's ``LOGGING``: the root logger to stderr, each record with its request id, as the
    message only (``text``) or one JSON object per line (``json``)."""
    if log_format not in {"text", "json"}:
        raise ValueError(f"PREFLAB_LOG_FORMAT must be 'text' or 'json', not {log_format!r}")
    console: dict[str, Any] = {"class": "logging.StreamHandler", "filters": ["request_id"]}
    if log_format == "json":
        console["formatter"] = "json"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"console": console},
        "root": {"handlers": ["console"], "level": level},
    }


class RequestIdMiddleware:
    """Gives each request an id, echoes it in ``X-Request-ID`` and logs one line per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = sane_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = rid
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            request_logger.info(
                "%s %s %s %.1fms",
                request.method,
                request.path,
                response.status_code,
                duration_ms,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                },
            )
            return response
        finally:
            request_id.reset(token)


# --- Celery ---------------------------------------------------------------------------------

# The contextvar tokens of the tasks running now, by task id, to reset after each.
_task_tokens: dict[str, Token[str | None]] = {}


def on_before_task_publish(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``before_task_publish``: the current request id goes into the task message's headers."""
    rid = request_id.get()
    if rid is not None and headers is not None:
        headers.setdefault(TASK_HEADER, rid)


def _task_request_id(task: Any) -> str | None:
    """The id in the running task's message: a top-level header in a worker, or in ``headers``
    when ``apply_async(headers=...)`` ran eagerly."""
    context = task.request
    found = getattr(context, TASK_HEADER, None)
    if found is None:
        found = (getattr(context, "headers", None) or {}).get(TASK_HEADER)
    return sane_request_id(found)


def on_task_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """``task_prerun``: the id from the message becomes the current one for the task. A message
    without one (an eager task, a beat task) leaves the current id as it is."""
    if task is None or task_id is None:
        return
    rid = _task_request_id(task)
    if rid is not None:
        _task_tokens[task_id] = request_id.set(rid)


def on_task_postrun(task_id: str | None = None, **kwargs: Any) -> None:
    """``task_postrun``: the id before the task is current again."""
    token = _task_tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        request_id.reset(token)


def on_after_setup_logger(logger: logging.Logger, **kwargs: Any) -> None:
    """``after_setup_logger``/``after_setup_task_logger``: the worker's own handlers get the
    request id, and the JSON format when ``PREFLAB_LOG_FORMAT=json``."""
    from django.conf import settings

    for handler in logger.handlers:
        handler.addFilter(RequestIdFilter())
        if settings.PREFLAB_LOG_FORMAT == "json":
            handler.setFormatter(JsonFormatter())
