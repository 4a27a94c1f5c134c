"""The audit log's doorway, part of the shared kernel: every app records what it changed here.

``audit_record(action, target=..., changes=...)`` says who did what to which object; who and from
where come from the request being served (``AuditContextMiddleware`` puts it in a context
variable), or name the process (``manage.py <command>``, ``celery``) when there is none. The event
is handed to the ``audit_recorded`` signal, which labeling connects to the one receiver that
stores it (``labeling.services.audit``): this module imports no app, so ``comparisons`` and
``model_runner`` may import it. With no receiver connected, recording raises rather than lose the
event. Inside a service's transaction the event commits or rolls back with the change it records.

Never pass secrets: ``changes`` keeps the before/after of changed fields, and any field named like
a secret (``SECRET_FIELDS``) is written as ``"[redacted]"``.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Model
from django.dispatch import Signal
from django.http import HttpRequest

#: Fields whose values never reach the log, whatever the caller passes.
SECRET_FIELDS = frozenset({"password", "password1", "password2", "digest", "token", "secret", "key"})
REDACTED = "[redacted]"
USER_AGENT_LENGTH = 200

#: Sent with ``record=AuditRecord``; labeling's receiver stores it.
audit_recorded = Signal()

_request: ContextVar[HttpRequest | None] = ContextVar("preflab_audit_request", default=None)


@dataclass(frozen=True)
class AuditRecord:
    action: str
    actor_id: int | None
    actor_name: str
    object_type: str = ""
    object_id: str = ""
    object_repr: str = ""
    changes: dict[str, Any] = field(default_factory=dict)
    ip_address: str | None = None
    user_agent: str = ""


def client_address(request: Any) -> str | None:
    """The client's address: the connection's, or with ``PREFLAB_PROXY_COUNT`` = N trusted proxies,
    the address the outermost of them saw (the N-th entry from the right of X-Forwarded-For).
    Also axes' ``AXES_CLIENT_IP_CALLABLE``."""
    meta = request.META
    address = meta.get("REMOTE_ADDR") or ""
    proxies = getattr(settings, "PREFLAB_PROXY_COUNT", 0)
    if proxies > 0:
        forwarded = [a.strip() for a in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


@contextmanager
def audit_request(request: HttpRequest) -> Iterator[None]:
    """Events recorded inside are attributed to the request's user and address."""
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


def _process_name() -> str:
    argv = sys.argv
    if argv and argv[0].endswith("manage.py") and len(argv) > 1:
        return f"manage.py {argv[1]}"
    if argv and "celery" in argv[0]:
        return "celery"
    return "system"


def _redact(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if k in SECRET_FIELDS else v) for k, v in changes.items()}


def audit_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: [before, after]}`` for each field whose value changed (secrets redacted)."""
    return _redact(
        {
            k: [before.get(k), after.get(k)]
            for k in sorted(set(before) | set(after))
            if before.get(k) != after.get(k)
        }
    )


def audit_record(
    action: str,
    *,
    target: Model | None = None,
    changes: Mapping[str, Any] | None = None,
    actor: Any = None,
    request: Any = None,
    object_type: str = "",
    object_id: Any = "",
    object_repr: str = "",
) -> None:
    """Record that ``action`` (``"<object>.<verb>"``, e.g. ``"queue.update"``) happened to ``target``.

    The actor is ``actor`` if given, else the user of ``request`` (or of the request being served;
    ``anonymous`` before logging in), else the process. Address and user agent come from that request.
    """
    request = request if request is not None else _request.get()
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or target.pk
        object_repr = object_repr or str(target)
    record = AuditRecord(
        action=action,
        actor_id=getattr(actor, "pk", None),
        actor_name=(
            actor.get_username()
            if actor is not None
            else "anonymous"
            if request is not None
            else _process_name()
        ),
        object_type=object_type,
        object_id="" if object_id is None else str(object_id),
        object_repr=object_repr[:200],
        changes=_redact(changes or {}),
        ip_address=client_address(request) if request is not None else None,
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request is not None else "")[
            :USER_AGENT_LENGTH
        ],
    )
    if not audit_recorded.send(sender=AuditRecord, record=record):
        raise RuntimeError("No audit log is connected: is the labeling app installed?")
