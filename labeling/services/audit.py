"""The audit log's one writer, and the signals it listens to.

``audit_event_store`` is the receiver of ``labeling.audit.audit_recorded`` (connected in
``LabelingConfig.ready``): every ``audit_record(...)`` of every app lands here as one
``AuditEvent`` row, which nothing updates or deletes afterwards (a database trigger refuses it).

Also connected there, for what no service of ours does:

- Django's login signals: ``auth.login`` (page, admin, or ``POST /api/v1/auth/token/``, which sends
  the signal too), ``auth.logout``, ``auth.login_failed`` (the username tried, never the password);
- axes' ``user_locked_out``: ``auth.lockout``; an ``AccessAttempt`` deleted while its lockout held
  (the admin's "Access attempts" page, ``manage.py axes_reset``): ``auth.unlock``;
- the Django admin's own history (``LogEntry``): ``admin.add``, ``admin.change``, ``admin.delete``
  with the admin's change message; bulk deletions through ``audited_delete_selected``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from labeling.audit import AuditRecord, audit_record
from labeling.models import AuditEvent

_ADMIN_ACTIONS = {ADDITION: "admin.add", CHANGE: "admin.change", DELETION: "admin.delete"}


def audit_event_store(*, record: AuditRecord) -> AuditEvent:
    """Store one event (the only place ``AuditEvent`` rows are made)."""
    return AuditEvent.objects.create(**asdict(record))


def on_audit_recorded(sender: Any, record: AuditRecord, **kwargs: Any) -> AuditEvent:
    return audit_event_store(record=record)


def _via(request: Any) -> str:
    path = getattr(request, "path", "") or ""
    return "api" if path.startswith("/api/") else "admin" if path.startswith("/admin/") else "page"


def on_user_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record("auth.login", actor=user, request=request, target=user, changes={"via": _via(request)})


def on_user_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record("auth.logout", actor=user, request=request, target=user)


def on_user_login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username") or "")
    if request is not None and getattr(request, "axes_locked_out", False):
        return  # refused unchecked because of a lockout: recorded as auth.lockout
    audit_record(
        "auth.login_failed",
        request=request,
        object_type="labeling.user",
        object_repr=username,
        changes={"username": username, "via": _via(request)},
    )


def on_user_locked_out(sender: Any, request: Any, username: str, ip_address: str, **kwargs: Any) -> None:
    audit_record(
        "auth.lockout",
        request=request,
        object_type="labeling.user",
        object_repr=username or "",
        changes={"username": username, "via": _via(request), "failure_limit": settings.AXES_FAILURE_LIMIT},
    )


def on_access_attempt_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A lockout lifted before its cool-off ended is an unlock (one that ran out is not)."""
    cooloff = timedelta(hours=settings.AXES_COOLOFF_TIME)
    if instance.failures_since_start < settings.AXES_FAILURE_LIMIT:
        return
    if instance.attempt_time + cooloff <= timezone.now():
        return
    audit_record(
        "auth.unlock",
        object_type="labeling.user",
        object_repr=instance.username or "",
        changes={"username": instance.username, "address": instance.ip_address},
    )


def on_log_entry_saved(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    """Mirror one Django admin history entry (Django writes single entries with ``save()``). Not
    for a raw save (``load_preferences``, ``loaddata``): a restored entry's event is restored too."""
    if not created or kwargs.get("raw"):
        return
    content_type = instance.content_type
    audit_record(
        _ADMIN_ACTIONS.get(instance.action_flag, "admin.change"),
        actor=instance.user,
        object_type=f"{content_type.app_label}.{content_type.model}" if content_type else "",
        object_id=instance.object_id or "",
        object_repr=instance.object_repr,
        changes={"message": instance.get_change_message()},
    )


def audited_delete_selected(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Model]
) -> HttpResponse | None:
    """The admin's "Delete selected" action, recording each object it deleted. Django's history
    writes the entries of a bulk deletion with ``bulk_create``, which no signal sees; a single
    entry is saved (and mirrored by ``on_log_entry_saved``)."""
    confirmed = bool(request.POST.get("post"))
    targets = {obj.pk: str(obj) for obj in queryset} if confirmed else {}
    response = delete_selected(modeladmin, request, queryset)
    if len(targets) > 1:
        model = queryset.model
        remaining = set(model._default_manager.filter(pk__in=list(targets)).values_list("pk", flat=True))
        for pk, text in targets.items():
            if pk not in remaining:
                audit_record(
                    "admin.delete",
                    object_type=model._meta.label_lower,
                    object_id=pk,
                    object_repr=text,
                    changes={"message": "Deleted (bulk action)."},
                )
    return response


delete_selected_description = getattr(
    delete_selected, "short_description", "Delete selected %(verbose_name_plural)s"
)
audited_delete_selected.short_description = delete_selected_description  # type: ignore[attr-defined]
audited_delete_selected.allowed_permissions = ("delete",)  # type: ignore[attr-defined]
