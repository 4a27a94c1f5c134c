"""Template pages for what is judged: admins upload prompts and responses made elsewhere (JSONL)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from labeling.errors import ApplicationError

from .importing import ImportFailed, iter_chunks, split_tags
from .models import Prompt
from .services.candidates import candidates_import
from .services.common import ImportResult
from .services.prompts import prompts_import


class PromptUploadForm(forms.Form):
    file = forms.FileField(
        label="Prompts (JSONL)",
        help_text='One prompt a line: {"id"?, "messages": [{"role", "content"}, ...], "tags"?} or {"prompt": "text"}.',
    )
    collection = forms.CharField(required=False, max_length=200, help_text="Collection for new prompts.")
    tags = forms.CharField(required=False, help_text="Comma-separated tags added to every prompt.")
    source = forms.ChoiceField(choices=Prompt.Source.choices, initial=Prompt.Source.IMPORT)


class CandidateUploadForm(forms.Form):
    file = forms.FileField(
        label="Responses made elsewhere (JSONL)",
        help_text='One response a line: {"prompt_id" or "messages", "text", "generator", "sample_index"?, "metadata"?}.',
    )


@login_required
def manage_import(request: HttpRequest) -> HttpResponse:
    """Upload prompts or responses; all or nothing, with the bad lines listed when a file is refused."""
    user: Any = request.user
    if not user.is_admin_role:
        raise PermissionDenied("Only admins import prompts and responses.")
    kind = request.POST.get("kind") if request.method == "POST" else None
    # Prefixed: both forms have a "file" field, and ids must stay unique on the page.
    prompt_form = (
        PromptUploadForm(data=request.POST, files=request.FILES, prefix="prompts")
        if kind == "prompts"
        else PromptUploadForm(prefix="prompts")
    )
    candidate_form = (
        CandidateUploadForm(data=request.POST, files=request.FILES, prefix="candidates")
        if kind == "candidates"
        else CandidateUploadForm(prefix="candidates")
    )
    failure: dict[str, Any] | None = None
    form = prompt_form if kind == "prompts" else candidate_form
    if kind in {"prompts", "candidates"}:
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = _run(kind, form.cleaned_data, iter_chunks(upload))
            except ImportFailed as exc:
                failure = {"kind": kind, "file": upload.name, **exc.as_dict()}
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                messages.success(request, _summary(kind, upload.name, result))
                return redirect("manage-import")
    context = {"prompt_form": prompt_form, "candidate_form": candidate_form, "failure": failure}
    return render(request, "comparisons/manage_import.html", context, status=400 if kind else 200)


def _run(kind: str, data: dict[str, Any], stream: Any) -> ImportResult:
    if kind == "prompts":
        return prompts_import(
            stream=stream,
            source=data["source"],
            collection=data["collection"].strip(),
            default_tags=split_tags(data["tags"]),
        )
    return candidates_import(stream=stream)


def _summary(kind: str, name: str, result: ImportResult) -> str:
    what = "prompts" if kind == "prompts" else "responses"
    return f"{name}: {result.created} new {what}, {result.existing} already there."
