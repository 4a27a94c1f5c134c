"""The audit log as admins read it: filtered, a page at a time, or whole as CSV or JSON Lines.

``/manage/audit/`` and ``GET /api/v1/audit/`` take the same filters (``audit_filters_clean``) and
the same rows (``audit_event_row``); ``?download=csv`` or ``?download=jsonl`` streams every
matching event, oldest first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from datetime import datetime, time, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from labeling.errors import ApplicationError
from labeling.models import AuditEvent

PAGE_SIZE = 50
#: The filters both doors take (query parameters).
AUDIT_FILTERS = ("actor", "action", "object_type", "object_id", "since", "until")
COLUMNS = (
    "id",
    "created_at",
    "actor_id",
    "actor_name",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "changes",
    "ip_address",
    "user_agent",
)
DOWNLOADS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def _moment(value: str, field: str, *, end: bool) -> datetime:
    """A date (the whole day: ``until`` takes in its end) or an ISO date-time."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise ApplicationError(f"{field}: write a date (2025-01-31) or a date and time", field=field)
        moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def audit_filters_clean(params: Mapping[str, Any]) -> dict[str, Any]:
    """The filters given, checked; raises ApplicationError naming a bad ``since`` or ``until``."""
    clean: dict[str, Any] = {}
    for name in AUDIT_FILTERS:
        value = str(params.get(name) or "").strip()
        if not value:
            continue
        clean[name] = _moment(value, name, end=name == "until") if name in ("since", "until") else value
    return clean


def audit_event_list(
    *,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events, newest first. ``actor``: the name at the time; ``action``: one action
    (``user.role_change``) or, without a dot, a family (``auth`` = ``auth.*``); ``object_type``
    as ``labeling.queue``; ``since`` inclusive, ``until`` exclusive."""
    events = AuditEvent.objects.all()
    if actor:
        events = events.filter(actor_name__iexact=actor)
    if action:
        events = (
            events.filter(action=action) if "." in action else events.filter(action__startswith=f"{action}.")
        )
    if object_type:
        events = events.filter(object_type=object_type)
    if object_id:
        events = events.filter(object_id=object_id)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return events.order_by("-created_at", "-id")


def audit_page(events: QuerySet[AuditEvent], number: Any) -> Page[AuditEvent]:
    return Paginator(events, PAGE_SIZE).get_page(number)


def audit_event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "changes": event.changes,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
    }


def audit_export_lines(events: QuerySet[AuditEvent], download: str) -> Iterator[str]:
    """Every event, oldest first, as CSV (``changes`` as JSON text) or JSON Lines. Raises
    ApplicationError naming ``download`` for another format (before anything is streamed)."""
    if download not in DOWNLOADS:
        raise ApplicationError("download: csv or jsonl", field="download")
    rows = (audit_event_row(e) for e in events.order_by("created_at", "id").iterator(chunk_size=2000))
    return _jsonl(rows) if download == "jsonl" else _csv(rows)


def _jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, cls=DjangoJSONEncoder, ensure_ascii=False) + "\n"


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe (usernames and
    object names are typed by people)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        row["changes"] = json.dumps(row["changes"], cls=DjangoJSONEncoder, ensure_ascii=False)
        writer.writerow([_cell(row[c]) for c in COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
