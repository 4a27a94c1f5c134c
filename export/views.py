"""Export page: researchers and admins create snapshots and download past ones."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from export.selectors import export_run_list
from export.services import export_run_create
from labeling.apis_common import ApplicationError
from labeling.models import Queue

# The table shows the newest runs; older ones stay in the API and the admin.
PAGE_RUNS = 50


class ExportCreateForm(forms.Form):
    queues = forms.ModelMultipleChoiceField(
        queryset=Queue.objects.order_by("name"),
        required=False,
        help_text="Leave empty to export every queue.",
    )
    name = forms.CharField(initial="preferences", max_length=100)


@login_required
def export_page(request: HttpRequest) -> HttpResponse:
    """GET: the form and past runs. POST: create a run (same service as the API), then redirect."""
    user: Any = request.user
    if not getattr(user, "can_export", False):
        raise PermissionDenied("Only researchers and admins may export.")
    status = 200
    form = ExportCreateForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            filters: dict[str, Any] = {}
            if form.cleaned_data["queues"]:
                filters["queues"] = [q.pk for q in form.cleaned_data["queues"]]
            try:
                export_run = export_run_create(
                    created_by=user, filters=filters, name=form.cleaned_data["name"]
                )
            except ApplicationError as exc:
                form.add_error("name" if exc.field == "name" else None, exc.message)
            else:
                messages.success(request, f"Export {export_run.pk} ({export_run.name}) was queued.")
                return redirect("export-page")
        status = 400
    context = {"form": form, "runs": export_run_list()[:PAGE_RUNS]}
    return render(request, "export/export_page.html", context, status=status)
