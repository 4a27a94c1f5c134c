"""``/manage/``: where admins and researchers start. Every area they may use, each with its state
at a glance: queues and their progress, generation jobs, what has been imported, recent exports,
and the Django admin. Researchers see the areas open to them (queues, read-only, and exports)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from export.selectors import overview


@login_required
def manage_home(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    if not getattr(user, "can_export", False):  # admins and researchers
        raise PermissionDenied("Only admins and researchers manage Preflab; raters work on /rate/.")
    admin = bool(user.is_admin_role)
    context = {
        "queues": overview.overview_queues(),
        "exports": overview.overview_exports(),
        "generation": overview.overview_generation() if admin else None,
        "imports": overview.overview_imports() if admin else None,
    }
    return render(request, "export/manage_home.html", context)
