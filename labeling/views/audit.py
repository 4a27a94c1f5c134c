"""``/manage/audit/`` (admins): the audit log, filtered by actor, action, object and date, a page
at a time, or downloaded whole as CSV or JSON Lines (``?download=csv``). Same filters and rows as
``GET /api/v1/audit/`` (``labeling.selectors.audit``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from labeling.audit import audit_record
from labeling.errors import ApplicationError
from labeling.models import User
from labeling.selectors.audit import (
    AUDIT_FILTERS,
    DOWNLOADS,
    audit_event_list,
    audit_export_lines,
    audit_filters_clean,
    audit_page,
)


def audit_download(request: HttpRequest, filters: dict, download: str) -> StreamingHttpResponse:
    """The matching events as a file (both doors), up to this moment; the download is itself
    recorded (and so is in the next download, not this one)."""
    events = audit_event_list(**filters)
    events = events.filter(pk__lte=events.aggregate(last=Max("pk"))["last"] or 0)
    lines = audit_export_lines(events, download)
    audit_record("audit.download", changes={"format": download, "filters": filters})
    response = StreamingHttpResponse(lines, content_type=DOWNLOADS[download])
    response["Content-Disposition"] = f'attachment; filename="preflab-audit.{download}"'
    return response


@login_required
def manage_audit(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if not user.is_admin_role:
        raise PermissionDenied("Only admins read the audit log.")
    values = {name: request.GET.get(name, "").strip() for name in AUDIT_FILTERS}
    try:
        filters = audit_filters_clean(values)
        download = request.GET.get("download")
        if download:
            return audit_download(request, filters, download)
    except ApplicationError as exc:
        return render(
            request, "labeling/manage_audit.html", {"values": values, "error": exc.message}, status=400
        )
    page = audit_page(audit_event_list(**filters), request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    query = params.urlencode()
    return render(request, "labeling/manage_audit.html", {"values": values, "page": page, "query": query})
