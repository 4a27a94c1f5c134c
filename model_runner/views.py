"""Template pages of the model runner: admins start and watch generation jobs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from comparisons.forms import PromptChoiceForm
from labeling.errors import ApplicationError
from model_runner import selectors, services
from model_runner.backends import GENERATING_BACKENDS
from model_runner.backends.base import MAX_NEW_TOKENS_LIMIT
from model_runner.models import GenerationJob, Generator

#: The bundled default, offered before its row exists (it is created when first used).
BUNDLED_CHOICE = "bundled"
#: The form's last choices, shown again after a job started.
LAST_CHOICE_SESSION_KEY = "manage-generation-last-choice"


def _require_admin(request: HttpRequest) -> None:
    user = request.user
    if not (getattr(user, "role", None) == "admin" or user.is_superuser):
        raise PermissionDenied("Only admins may start or watch generation.")


class GenerationJobStartForm(PromptChoiceForm):
    """The page's form: the same request as ``POST /api/v1/generation-jobs/``."""

    generators = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    samples_per_prompt = forms.IntegerField(
        label="Samples per prompt (K)", initial=4, min_value=1, max_value=services.MAX_SAMPLES_PER_PROMPT
    )
    max_new_tokens = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_NEW_TOKENS_LIMIT,
        help_text="Empty: the generator's default.",
    )
    temperature = forms.FloatField(
        required=False, min_value=0, max_value=10, help_text="0 = greedy. Empty: the generator's default."
    )
    seed = forms.IntegerField(required=False, min_value=0, help_text="Same seed, same samples.")
    batch_size = forms.IntegerField(
        label="Prompts per task", initial=16, min_value=1, max_value=services.MAX_BATCH_SIZE
    )
    # Sent by the confirmation's button: the number of prompts the admin agreed to.
    confirm_prompts = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        usable = [g for g in selectors.generator_list() if g.is_active and g.backend in GENERATING_BACKENDS]
        choices = [(str(g.pk), f"{g.name} ({g.backend})") for g in usable]
        if not Generator.objects.filter(name=services.BUNDLED_GENERATOR_NAME).exists():
            choices.insert(0, (BUNDLED_CHOICE, f"{services.BUNDLED_GENERATOR_NAME} (bundled)"))
        generators_field: Any = self.fields["generators"]
        generators_field.choices = choices
        if len(choices) == 1:
            generators_field.initial = [choices[0][0]]

    def chosen_generators(self) -> list[Generator]:
        chosen = self.cleaned_data["generators"]
        refs: list[int | str] = [int(ref) for ref in chosen if ref != BUNDLED_CHOICE]
        found = selectors.generators_resolve(refs=refs) if refs else []
        if BUNDLED_CHOICE in chosen:
            found.insert(0, services.generator_get_bundled())
        return found

    def confirmation_needed(self, *, prompts: list[Any]) -> dict[str, int] | None:
        """The counts to ask about when the job is over the confirmation limit and the submit did
        not confirm exactly this many prompts (a changed choice is asked about again); else None."""
        limit = settings.PREFLAB_CONFIRM_PROMPTS
        n = len(prompts)
        if not limit or n <= limit or self.cleaned_data.get("confirm_prompts") == n:
            return None
        generators = len(self.cleaned_data["generators"])
        samples = self.cleaned_data["samples_per_prompt"]
        return {
            "prompts": n,
            "limit": limit,
            "generators": generators,
            "samples": samples,
            "candidates": n * generators * samples,
        }

    def choice_to_keep(self, *, job: GenerationJob) -> dict[str, Any]:
        """What the form shows after the job started: the same choices (the bundled model by its
        row, which exists now), so a second click makes the same job, not one over every prompt."""
        kept = {key: value for key, value in self.cleaned_data.items() if key != "confirm_prompts"}
        kept["generators"] = [str(g.pk) for g in job.generators.all()]
        return kept

    def sampling_overrides(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {key: data[key] for key in ("max_new_tokens", "temperature", "seed") if data[key] is not None}


def _jobs_context() -> dict[str, Any]:
    jobs = list(selectors.generation_job_list()[:50])
    rows = [
        {
            "job": job,
            **selectors.generation_job_stats(job=job),
            "notice": selectors.generation_job_notice(job=job),
        }
        for job in jobs
    ]
    active = any(job.status in {GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING} for job in jobs)
    return {"rows": rows, "active": active}


def _page(
    request: HttpRequest, form: GenerationJobStartForm, status: int = 200, **extra: Any
) -> HttpResponse:
    context = {"form": form, "confirm_limit": settings.PREFLAB_CONFIRM_PROMPTS, **_jobs_context(), **extra}
    return render(request, "model_runner/manage_generation.html", context, status=status)


@login_required
def manage_generation(request: HttpRequest) -> HttpResponse:
    """Admins start jobs and watch them; while a job runs, the jobs table refreshes itself every 2 s
    (``?fragment=jobs`` returns just that table) and the form keeps what was typed.

    After a job starts, the form shows the same choice again (kept in the session), never "All
    prompts" behind the admin's back. A job over more than ``PREFLAB_CONFIRM_PROMPTS`` prompts is
    not started by the first submit: the page asks, stating the counts, and a second submit with
    that number (``confirm_prompts``) starts it.
    """
    _require_admin(request)
    if request.GET.get("fragment") == "jobs":
        return render(request, "model_runner/_generation_jobs.html", _jobs_context())
    if request.method != "POST":
        return _page(request, GenerationJobStartForm(initial=request.session.get(LAST_CHOICE_SESSION_KEY)))
    form = GenerationJobStartForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        prompts = form.chosen_prompts()
        question = form.confirmation_needed(prompts=prompts)
        if question:
            return _page(request, form, confirm=question, resubmit=_resubmit(request))
        with transaction.atomic():  # a refused job leaves no bundled generator's row behind
            job = services.generation_job_create(
                prompts=prompts,
                generators=form.chosen_generators(),
                samples_per_prompt=form.cleaned_data["samples_per_prompt"],
                sampling=form.sampling_overrides(),
                batch_size=form.cleaned_data["batch_size"],
                created_by=request.user,
            )
    except ApplicationError as exc:
        form.add_service_error(exc.field, exc.message)
        return _page(request, form, status=400)
    request.session[LAST_CHOICE_SESSION_KEY] = form.choice_to_keep(job=job)
    messages.success(request, f"Generation job {job.pk} started: {job.total} candidates to make.")
    return redirect("manage-generation")


def _resubmit(request: HttpRequest) -> list[tuple[str, str]]:
    """The posted fields, to send again as they are from the confirmation's own button."""
    skip = {"csrfmiddlewaretoken", "confirm_prompts"}
    return [(key, value) for key, values in request.POST.lists() if key not in skip for value in values]


@login_required
@require_POST
def manage_generation_action(request: HttpRequest, job_id: int, action: str) -> HttpResponse:
    """The page's Cancel and Retry buttons: the same services as the API's cancel and retry."""
    _require_admin(request)
    if action not in {"cancel", "retry"}:
        raise Http404("unknown action")
    try:
        job = selectors.generation_job_get(job_id=job_id)
        if action == "cancel":
            services.generation_job_cancel(job=job)
            messages.success(request, f"Generation job {job_id} cancelled; the candidates it made stay.")
        else:
            services.generation_job_retry(job=job)
            messages.success(request, f"Generation job {job_id}: its unfinished batches run again.")
    except ApplicationError as exc:
        if exc.status_code == 404:
            raise Http404(exc.message)
        messages.error(request, exc.message)
    return redirect("manage-generation")
