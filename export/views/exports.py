"""The export page: researchers and admins create snapshots (with a live row estimate), watch them
run, and download past ones."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from comparisons.forms import ModelIdsField
from export.models import ExportRun
from export.selectors.facts import export_estimate
from export.selectors.reward_pairs import pairs_supported, reward_check_latest
from export.selectors.runs import export_run_list
from export.services.reward_checks import ACTIVE as CHECKS_ACTIVE
from export.services.runs import export_run_create
from export.spec import export_spec_clean
from labeling.errors import ApplicationError, id_or_none
from labeling.models import HarmCategory, Queue, Rubric, SessionTemplate
from model_runner.models import Generator

# The table shows the newest runs; older ones stay in the API and the admin.
PAGE_RUNS = 50
#: While a run shown is in one of these, the table refreshes itself.
ACTIVE = {ExportRun.Status.QUEUED, ExportRun.Status.RUNNING}


class ExportCreateForm(forms.Form):
    name = forms.CharField(
        initial="preferences", max_length=100, help_text="Also salts the splits and rater ids."
    )
    format = forms.ChoiceField(choices=ExportRun.Format.choices, initial=ExportRun.Format.TRL)
    aggregation = forms.ChoiceField(
        choices=ExportRun.Aggregation.choices,
        initial=ExportRun.Aggregation.RAW,
        help_text=(
            "Majority / mean (trl, hh, helpsteer): one row per candidate pair, pooling the votes of "
            "every comparison that holds both responses (pairwise and ranking queues alike). "
            "Adjudicated: as majority, but a reviewer's final label decides the pairs it covers."
        ),
    )
    queues = ModelIdsField(
        queryset=Queue.objects.order_by("name"), required=False, help_text="Leave empty for every queue."
    )
    rubric_versions = ModelIdsField(
        queryset=Rubric.objects.order_by("name", "version"), required=False, label="Rubric versions"
    )
    generators = ModelIdsField(
        queryset=Generator.objects.order_by("name"),
        required=False,
        help_text="Keep comparisons whose every response came from these.",
    )
    modes = forms.MultipleChoiceField(
        choices=SessionTemplate.Mode.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Conversation modes",
        help_text="Only conversations of these modes (leave empty for everything).",
    )
    tags = forms.CharField(required=False, help_text="Prompt tags, comma-separated (any of them).")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    min_judgments = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1000,
        label="Min judgments",
        help_text=(
            "Majority / mean: votes per row (a candidate pair, its votes pooled from every comparison "
            "holding both responses; the n_judgments column). Raw: judgments per comparison."
        ),
    )
    min_agreement = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        label="Min majority share (0..1)",
        help_text=(
            "The share of the votes that agree with the majority. Majority / mean: per row, the "
            "agreement column (the share of its votes on the row's side). Raw: per comparison, the "
            "share agreeing with its most common answer. Not the pairwise rater agreement of the "
            "queue dashboard."
        ),
    )
    exclude_flagged = forms.BooleanField(required=False, label="Exclude flagged comparisons")
    exclude_gold = forms.BooleanField(required=False, label="Exclude gold items")
    exclude_paused_raters = forms.BooleanField(required=False, label="Exclude deactivated raters")
    sources = forms.MultipleChoiceField(
        choices=[("judgments", "Rater judgments"), ("redteam", "Confirmed red-team attacks")],
        initial=["judgments"],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Pairs from",
        help_text=(
            "trl, hh, helpsteer: red-team pairs are the ideal reply over the model's reply, for "
            "confirmed training-side attacks (the test side is the redteam_eval view)."
        ),
    )
    harm_categories = forms.ModelMultipleChoiceField(
        queryset=HarmCategory.objects.order_by("position", "key"),
        to_field_name="key",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Harm categories",
        help_text="Red-team rows of these categories only (leave empty for every category).",
    )
    standard = forms.BooleanField(required=False, label="TRL: standard (plain strings)")
    implicit_prompt = forms.BooleanField(required=False, label="TRL: implicit prompt")
    pairs = forms.BooleanField(required=False, label="Rankings: expand to K-choose-2 pairs")
    file_kinds = forms.MultipleChoiceField(
        choices=[("jsonl", "JSONL"), ("parquet", "Parquet")],
        initial=["jsonl", "parquet"],
        widget=forms.CheckboxSelectMultiple,
    )
    gzip = forms.BooleanField(required=False, label="Gzip the JSONL files")
    test_fraction = forms.FloatField(initial=0.1, min_value=0, max_value=0.5)
    validation_fraction = forms.FloatField(initial=0.0, min_value=0, max_value=0.5)
    redteam_split = forms.BooleanField(required=False, label="Hold out red-team prompts")

    def request_kwargs(self) -> dict[str, Any]:
        """The same request the API takes: name, format, aggregation, filters, options."""
        data = self.cleaned_data
        filters: dict[str, Any] = {}
        for key in ("queues", "rubric_versions"):
            if data[key]:
                filters[key] = [obj.pk for obj in data[key]]
        if data["generators"]:
            filters["generators"] = [g.name for g in data["generators"]]
        if data["modes"]:
            filters["modes"] = list(data["modes"])
        tags = [t.strip() for t in (data["tags"] or "").split(",") if t.strip()]
        if tags:
            filters["tags"] = tags
        for key in ("since", "until"):
            if data[key]:
                filters[key] = data[key].isoformat()
        for key in ("min_judgments", "min_agreement"):
            if data[key] is not None:
                filters[key] = data[key]
        for key in ("exclude_flagged", "exclude_gold", "exclude_paused_raters"):
            if data[key]:
                filters[key] = True
        if data["sources"] and sorted(data["sources"]) != ["judgments"]:
            filters["sources"] = sorted(data["sources"])
        if data["harm_categories"]:
            filters["harm_categories"] = [c.key for c in data["harm_categories"]]
        options: dict[str, Any] = {"files": data["file_kinds"]}
        for key in ("standard", "implicit_prompt", "pairs", "gzip", "redteam_split"):
            if data[key]:
                options[key] = True
        for key in ("test_fraction", "validation_fraction"):
            if data[key] is not None:
                options[key] = data[key]
        return {
            "name": data["name"],
            "format": data["format"],
            "aggregation": data["aggregation"],
            "filters": filters,
            "options": options,
        }


def _require_export(request: HttpRequest) -> Any:
    user: Any = request.user
    if not getattr(user, "can_export", False):
        raise PermissionDenied("Only researchers and admins may export.")
    return user


def _runs_context(*, highlight: int | None) -> dict[str, Any]:
    runs = list(export_run_list()[:PAGE_RUNS])
    latest = reward_check_latest(export_runs=runs)
    for run in runs:
        run.reward_check = latest.get(run.pk)  # type: ignore[attr-defined]
        checkable = run.status == ExportRun.Status.SUCCEEDED and not pairs_supported(export_run=run)
        run.reward_checkable = checkable  # type: ignore[attr-defined]
    active = any(run.status in ACTIVE for run in runs) or any(
        c.status in CHECKS_ACTIVE for c in latest.values()
    )
    return {"runs": runs, "active": active, "highlight": highlight}


@login_required
def export_page(request: HttpRequest) -> HttpResponse:
    """GET: the form and past runs; while a run is queued or running, the runs table refreshes
    itself every 2 s (``?fragment=runs`` returns just that table) and the form keeps what was typed.
    POST: create a run (same service as the API), then show it: ``?run=<id>#run-<id>`` marks it."""
    user = _require_export(request)
    highlight = _run_id(request.GET.get("run"))
    if request.GET.get("fragment") == "runs":
        return render(request, "export/_export_runs.html", _runs_context(highlight=highlight))
    status = 200
    form = ExportCreateForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                export_run = export_run_create(created_by=user, **form.request_kwargs())
            except ApplicationError as exc:
                field = (exc.field or "").split(".")[-1]
                form.add_error(field if field in form.fields else None, exc.message)
            else:
                messages.success(
                    request,
                    f"Export {export_run.pk} ({export_run.name}) was queued; "
                    "its row below shows its progress and its files once written.",
                )
                return redirect(f"{reverse('export-page')}?run={export_run.pk}#run-{export_run.pk}")
        status = 400
    context = {"form": form, **_runs_context(highlight=highlight)}
    return render(request, "export/export_page.html", context, status=status)


def _run_id(value: str | None) -> int | None:
    """The run to highlight: an id in ASCII digits, else none ("?run=²" is no 500)."""
    return id_or_none(value, ExportRun._meta.get_field("id"))


@login_required
def export_estimate_json(request: HttpRequest) -> JsonResponse:
    """The page's live estimate: the form's fields as a query string in, row counts (JSON) out.

    Bad fields give 400 with ``{"detail", "field"}``, the same shape as the API's errors.
    """
    _require_export(request)
    form = ExportCreateForm(request.GET)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        return JsonResponse(
            {"detail": f"{field}: {' '.join(str(e) for e in errors)}", "field": field}, status=400
        )
    try:
        spec = export_spec_clean(**form.request_kwargs())
    except ApplicationError as exc:
        return JsonResponse({"detail": exc.message, "field": exc.field}, status=400)
    return JsonResponse(
        export_estimate(
            filters=spec.filters,
            format=spec.format,
            aggregation=spec.aggregation,
            pairs=spec.options["pairs"],
        )
    )
