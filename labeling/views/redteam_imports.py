"""The upload page for jailbreaks from the wild (admins): /manage/redteam/import/.

It calls ``attack_import_jsonl``, as the API and ``manage.py import_jailbreaks`` do: a file is
imported whole or not at all, and a refused one has its bad lines listed.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from comparisons.importing import ImportFailed
from labeling.errors import ApplicationError
from labeling.models import Queue
from labeling.services.redteam_imports import attack_import_jsonl


class AttackImportForm(forms.Form):
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.filter(kind=Queue.Kind.REDTEAM).order_by("name"),
        help_text="The red-team review queue the attacks wait in for triage.",
    )
    file = forms.FileField(
        help_text='JSONL, one exchange a line: {"messages": [..., the assistant reply], '
        '"feedback"?: {"rating"?, "report_reason"?}, "model"?, "id"?}.'
    )


@login_required
def manage_redteam_import(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: import the file (all or nothing), then say what was created."""
    user: Any = request.user
    if not user.is_admin_role:
        raise PermissionDenied("Only admins import attacks.")
    form = AttackImportForm(request.POST or None, request.FILES or None)
    failure: dict[str, Any] | None = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            result = attack_import_jsonl(queue=form.cleaned_data["queue"], file=upload, imported_by=user)
        except ImportFailed as exc:
            failure = {"file": upload.name, **exc.as_dict()}
        except ApplicationError as exc:
            form.add_error("queue" if exc.field == "queue" else None, exc.message)
        else:
            messages.success(
                request,
                f"{upload.name}: {result.created} attack(s) created, {result.existing} already imported.",
            )
            return redirect("manage-redteam-import")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "labeling/manage_redteam_import.html", {"form": form, "failure": failure}, status=status
    )
