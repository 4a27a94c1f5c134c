"""Template pages for what is judged: admins upload prompts, responses made elsewhere and existing
preference datasets, in JSONL, CSV, Parquet, Arrow or a zipped saved dataset.

The page calls ``import_start``, as the API does: a small file is imported at once; a big one
becomes an ImportJob run by a worker, shown in the page's "Imports in the background" table,
which refreshes itself while a job is queued or running (``?fragment=jobs``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from labeling.errors import ApplicationError

from .importing import ImportFailed, size_text
from .models import ImportJob, Prompt
from .readers import FORMATS
from .selectors import import_job_list
from .services.common import ImportResult
from .services.import_jobs import COMPRESSED_WEIGHT, OPTIONS, async_bytes, import_start

#: How many import jobs the page lists.
PAGE_JOBS = 10
FORMAT_CHOICES = [("", "From the file's name (else JSONL)")] + [(f, f) for f in FORMATS]


class _FileForm(forms.Form):
    format = forms.ChoiceField(
        choices=FORMAT_CHOICES,
        required=False,
        help_text=".jsonl, .csv (also gzipped), .parquet, .arrow, or a .zip of a folder saved by datasets.",
    )
    columns = forms.CharField(
        required=False,
        help_text="Which column holds which field, when the names differ: e.g. prompt=question, text=answer.",
    )
    split = forms.CharField(required=False, help_text="For a saved DatasetDict: the split to import.")


class _PromptFields(_FileForm):
    collection = forms.CharField(required=False, max_length=200, help_text="Collection for new prompts.")
    tags = forms.CharField(required=False, help_text="Comma-separated tags added to every prompt.")
    source = forms.ChoiceField(choices=Prompt.Source.choices, initial=Prompt.Source.IMPORT)


class PromptUploadForm(_PromptFields):
    file = forms.FileField(
        label="Prompts",
        help_text='One prompt a line (row): {"id"?, "messages": [{"role", "content"}, ...], "tags"?} or {"prompt": "text"}.',
    )
    field_order = ["file"]


class CandidateUploadForm(_FileForm):
    file = forms.FileField(
        label="Responses made elsewhere",
        help_text='One response a line (row): {"prompt_id" or "messages", "text", "generator", "sample_index"?, "metadata"?}.',
    )
    field_order = ["file"]


class PreferenceUploadForm(_PromptFields):
    file = forms.FileField(
        label="Preference dataset",
        help_text='One pair a line (row): {"prompt"?, "chosen", "rejected"}: replies as texts or message lists, '
        "or HH-RLHF transcripts.",
    )
    dataset = forms.CharField(
        required=False,
        max_length=200,
        help_text="Names the generator of its responses; default: the file's name.",
    )
    field_order = ["file", "dataset"]


FORMS: dict[str, type[forms.Form]] = {
    "prompts": PromptUploadForm,
    "candidates": CandidateUploadForm,
    "preferences": PreferenceUploadForm,
}
WHAT = {"prompts": "prompts", "candidates": "responses", "preferences": "preference pairs"}


@login_required
def manage_import(request: HttpRequest) -> HttpResponse:
    """Upload prompts, responses or a preference dataset; all or nothing, with the bad lines listed
    when a file is refused. A big file is imported in the background: the jobs table shows it."""
    user: Any = request.user
    if not user.is_admin_role:
        raise PermissionDenied("Only admins import prompts and responses.")
    highlight = _job_id(request.GET.get("job"))
    if request.GET.get("fragment") == "jobs":
        return render(request, "comparisons/_import_jobs.html", _jobs_context(highlight=highlight))
    kind = request.POST.get("kind") if request.method == "POST" else None
    # Prefixed: the forms share field names, and ids must stay unique on the page.
    bound = {
        name: form_class(data=request.POST, files=request.FILES, prefix=name)
        if kind == name
        else form_class(prefix=name)
        for name, form_class in FORMS.items()
    }
    failure: dict[str, Any] | None = None
    if kind in FORMS:
        form = bound[kind]
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                outcome = import_start(
                    kind=kind,
                    upload=upload,
                    created_by=user,
                    options=_options(kind, form.cleaned_data),
                    file_name=upload.name,
                    size=upload.size,
                )
            except ImportFailed as exc:
                failure = {"kind": kind, "file": upload.name, **exc.as_dict()}
            except ApplicationError as exc:
                field = {"default_tags": "tags"}.get(exc.field or "", exc.field or "")
                form.add_error(field if field in form.fields else "file", exc.message)
            else:
                if isinstance(outcome, ImportJob):
                    messages.success(
                        request,
                        f"{upload.name} is being imported in the background (import {outcome.pk}); "
                        "its row below shows its progress, and what was written or why nothing was.",
                    )
                    return redirect(f"{reverse('manage-import')}?job={outcome.pk}#job-{outcome.pk}")
                messages.success(request, _summary(kind, upload.name, outcome))
                return redirect("manage-import")
    context = {
        "prompt_form": bound["prompts"],
        "candidate_form": bound["candidates"],
        "preference_form": bound["preferences"],
        "failure": failure,
        **_jobs_context(highlight=highlight),
    }
    return render(request, "comparisons/manage_import.html", context, status=400 if kind else 200)


def _options(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    options = {key: value for key, value in data.items() if key in OPTIONS[kind] and value not in (None, "")}
    if "tags" in data and "default_tags" in OPTIONS[kind]:
        options["default_tags"] = data["tags"] or ""
    return options


def _jobs_context(*, highlight: int | None) -> dict[str, Any]:
    jobs = list(import_job_list()[:PAGE_JOBS])
    active = any(not job.finished for job in jobs)
    return {
        "jobs": jobs,
        "jobs_active": active,
        "highlight": highlight,
        "async_mb": size_text(async_bytes()),
        "async_compressed_mb": size_text(async_bytes() // COMPRESSED_WEIGHT),
    }


def _job_id(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdigit() and len(value) < 19 else None


def _summary(kind: str, name: str, result: ImportResult) -> str:
    text = f"{name}: {result.created} new {WHAT[kind]}, {result.existing} already there."
    if kind == "preferences":
        prompts, candidates = result.counts["prompts"], result.counts["candidates"]
        text += (
            f" Prompts: {prompts['created']} new, {prompts['existing']} already there;"
            f" responses: {candidates['created']} new, {candidates['existing']} already there."
        )
    return text
