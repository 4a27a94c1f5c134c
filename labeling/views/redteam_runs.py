"""``/manage/redteam/`` (admins): start adversary jobs and test-set runs, watch them, and read the
attack success and over-refusal rates of the tested generators as charts with 95% intervals, side
by side for two. The forms call the same services as ``/api/v1/adversary-jobs/`` and
``/api/v1/redteam/eval-runs/``; the charts show the numbers of ``GET /api/v1/redteam/rates/``. The
safe-replies form asks for fresh candidates ranked by raters for the confirmed attacks without a
safe reply, as ``POST /api/v1/redteam/safe-replies/`` does."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from labeling.errors import ApplicationError
from labeling.models import AdversaryJob, HarmCategory, Queue, Rubric, User
from labeling.selectors import redteam_runs as runs
from labeling.selectors.redteam_rates import redteam_rates, redteam_rates_params_clean
from labeling.selectors.redteam_safe_replies import attacks_needing_safe_replies
from labeling.services import adversary, redteam_eval
from labeling.services.redteam_safe_replies import (
    MAX_SAMPLES,
    MIN_SAMPLES,
    SafeRepliesRequested,
    attack_safe_replies_request,
)
from labeling.views.redteam_charts import rate_charts
from model_runner.backends import GENERATING_BACKENDS
from model_runner.backends.base import MAX_NEW_TOKENS_LIMIT
from model_runner.models import Generator


def _require_admin(request: HttpRequest) -> None:
    user: Any = request.user
    if not (getattr(user, "role", None) == "admin" or user.is_superuser):
        raise PermissionDenied("Only admins run the adversary and test-set runs.")


def _choices_queues() -> list[tuple[str, str]]:
    return [
        (str(pk), name)
        for pk, name in Queue.objects.filter(kind=Queue.Kind.REDTEAM).values_list("pk", "name")
    ]


def _choices_generators() -> list[tuple[str, str]]:
    usable = Generator.objects.filter(is_active=True, backend__in=sorted(GENERATING_BACKENDS)).order_by(
        "name"
    )
    return [(str(g.pk), f"{g.name} ({g.backend})") for g in usable]


def _choices_categories(blank: str | None = None) -> list[tuple[str, str]]:
    found = [
        (key, label) for key, label in HarmCategory.objects.filter(active=True).values_list("key", "label")
    ]
    return [("", blank), *found] if blank is not None else found


class _ServiceErrors(forms.Form):
    def add_service_error(self, error: ApplicationError) -> None:
        """Show a service's error on the field it names (one the form lacks: above the form)."""
        name = (error.field or "").split(".")[0].split("[")[0]
        self.add_error(name if name in self.fields else None, error.message)


class AdversaryJobForm(_ServiceErrors):
    """The same request as ``POST /api/v1/adversary-jobs/`` (seeds: the category's confirmed attacks)."""

    queue = forms.ChoiceField(label="Review queue")
    attacker = forms.ChoiceField(label="Attacker model")
    target = forms.ChoiceField(label="Target model")
    category = forms.ChoiceField(label="Harm category")
    attacks = forms.IntegerField(
        label="Distinct attacks (N)", initial=10, min_value=1, max_value=adversary.MAX_ATTACKS
    )
    max_turns = forms.IntegerField(
        label="Attacker turns per attack (M)", initial=1, min_value=1, max_value=adversary.MAX_TURNS
    )
    max_new_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_NEW_TOKENS_LIMIT, help_text="Empty: each model's default."
    )
    temperature = forms.FloatField(
        required=False, min_value=0, max_value=10, help_text="Empty: each model's default."
    )
    attacker_system_prompt = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Empty: the built-in instructions (write one new attack prompt in the category, in the "
        "style of the seeds, output only the prompt).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        generators = _choices_generators()
        self.fields["queue"].choices = _choices_queues()  # type: ignore[attr-defined]
        self.fields["attacker"].choices = generators  # type: ignore[attr-defined]
        self.fields["target"].choices = generators  # type: ignore[attr-defined]
        self.fields["category"].choices = _choices_categories()  # type: ignore[attr-defined]

    def start(self, user: Any) -> AdversaryJob:
        data = self.cleaned_data
        sampling = {k: data[k] for k in ("max_new_tokens", "temperature") if data[k] is not None}
        return adversary.adversary_job_start(
            queue=Queue.objects.get(pk=data["queue"]),
            attacker=Generator.objects.get(pk=data["attacker"]),
            target=Generator.objects.get(pk=data["target"]),
            category=data["category"],
            attacker_system_prompt=data["attacker_system_prompt"],
            attacks=data["attacks"],
            max_turns=data["max_turns"],
            sampling=sampling,
            created_by=user,
        )


class EvalRunForm(_ServiceErrors):
    """The same request as ``POST /api/v1/redteam/eval-runs/``."""

    queue = forms.ChoiceField(label="Review queue", help_text="Where the attempts wait for verdicts.")
    generator = forms.ChoiceField(label="Generator tested")
    category = forms.ChoiceField(label="Category", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].choices = _choices_queues()  # type: ignore[attr-defined]
        self.fields["generator"].choices = _choices_generators()  # type: ignore[attr-defined]
        self.fields["category"].choices = _choices_categories(blank="Every category")  # type: ignore[attr-defined]

    def start(self, user: Any) -> Any:
        data = self.cleaned_data
        return redteam_eval.redteam_eval_start(
            queue=Queue.objects.get(pk=data["queue"]),
            generator=Generator.objects.get(pk=data["generator"]),
            category=data["category"],
            created_by=user,
        )


class SafeRepliesForm(_ServiceErrors):
    """The same request as ``POST /api/v1/redteam/safe-replies/``."""

    generator = forms.ChoiceField(label="Generator", help_text="Writes the fresh candidates.")
    samples = forms.IntegerField(
        label="Candidates per prompt (K)", initial=4, min_value=MIN_SAMPLES, max_value=MAX_SAMPLES
    )
    queue_name = forms.CharField(label="Ranking queue name", max_length=100)
    rubric = forms.ChoiceField()
    members = forms.CharField(required=False, help_text="Comma-separated usernames of the raters.")
    category = forms.ChoiceField(label="Category", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["generator"].choices = _choices_generators()  # type: ignore[attr-defined]
        self.fields["rubric"].choices = [  # type: ignore[attr-defined]
            (str(r.pk), str(r)) for r in Rubric.objects.order_by("name", "-version")
        ]
        self.fields["category"].choices = _choices_categories(blank="Every category")  # type: ignore[attr-defined]

    def clean_members(self) -> list[User]:
        names = [n.strip() for n in self.cleaned_data["members"].split(",") if n.strip()]
        users = list(User.objects.filter(username__in=names))
        missing = sorted(set(names) - {u.username for u in users})
        if missing:
            raise forms.ValidationError(f"Unknown users: {', '.join(missing[:10])}")
        return users

    def start(self, user: Any) -> SafeRepliesRequested:
        data = self.cleaned_data
        return attack_safe_replies_request(
            generator=Generator.objects.get(pk=data["generator"]),
            samples=data["samples"],
            queue_name=data["queue_name"],
            rubric=Rubric.objects.get(pk=data["rubric"]),
            members=data["members"],
            category=data["category"] or None,
            created_by=user,
        )


class RatesForm(forms.Form):
    """The charts' scope, as ``GET /api/v1/redteam/rates/`` takes it (checked by the same function)."""

    generators = forms.CharField(
        required=False,
        help_text="Comma-separated names or ids; two for a side-by-side comparison. Empty: every tested generator.",
    )
    category = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = _choices_categories(blank="Every category")  # type: ignore[attr-defined]


def _page(
    request: HttpRequest,
    *,
    job_form: AdversaryJobForm | None = None,
    eval_form: EvalRunForm | None = None,
    safe_form: SafeRepliesForm | None = None,
    status: int = 200,
) -> HttpResponse:
    rates_form = RatesForm(data=request.GET)
    rates_form.is_valid()  # only to render the values given; the selector's check below is the check
    rates: dict[str, Any] | None = None
    try:
        rates = redteam_rates(**redteam_rates_params_clean(request.GET))
    except ApplicationError as error:
        rates_form.add_error(error.field if error.field in rates_form.fields else None, error.message)
        status = 400 if status == 200 else status
    comparison = rates["comparison"] if rates else None
    context = {
        "job_form": job_form or AdversaryJobForm(),
        "eval_form": eval_form or EvalRunForm(),
        "safe_form": safe_form or SafeRepliesForm(),
        "needing_safe_replies": len(attacks_needing_safe_replies()),
        "rates_form": rates_form,
        "jobs": list(runs.adversary_job_list()[:30]),
        "eval_runs": list(runs.redteam_eval_run_list()[:30]),
        "rates": rates,
        "comparison": comparison,
        "charts": rate_charts(comparison["rows"] if comparison else rates["generators"]) if rates else [],
    }
    return render(request, "labeling/manage_redteam.html", context, status=status)


@login_required
def manage_redteam(request: HttpRequest) -> HttpResponse:
    """The forms, the jobs and runs, and the rate charts for the generators chosen."""
    _require_admin(request)
    return _page(request)


def _start(request: HttpRequest, form: Any, form_key: str, said: Any) -> HttpResponse:
    """A start form's POST: the form's checks, then its service (whose 400s and 409s land on the
    form, the page shown again with them); on success ``said(result)`` is the message."""
    _require_admin(request)
    if not form.is_valid():
        return _page(request, **{form_key: form}, status=400)
    try:
        result = form.start(request.user)
    except ApplicationError as error:
        form.add_service_error(error)
        return _page(request, **{form_key: form}, status=error.status_code)
    messages.success(request, said(result))
    return redirect("manage-redteam")


@login_required
@require_POST
def manage_adversary_job_start(request: HttpRequest) -> HttpResponse:
    return _start(
        request,
        AdversaryJobForm(request.POST),
        "job_form",
        lambda job: f"Adversary job {job.pk} started: {job.attacks} attacks to write.",
    )


@login_required
@require_POST
def manage_adversary_job_action(request: HttpRequest, job_id: int, action: str) -> HttpResponse:
    """The jobs table's Cancel and Retry buttons: the same services as the API's."""
    _require_admin(request)
    if action not in {"cancel", "retry"}:
        raise Http404("unknown action")
    try:
        job = runs.adversary_job_get(job_id=job_id)
        if action == "cancel":
            adversary.adversary_job_cancel(job=job)
            messages.success(request, f"Adversary job {job_id} cancelled; the exchanges it stored stay.")
        else:
            adversary.adversary_job_retry(job=job)
            messages.success(request, f"Adversary job {job_id} runs again for its missing attacks.")
    except ApplicationError as error:
        if error.status_code == 404:
            raise Http404(error.message)
        messages.error(request, error.message)
    return redirect("manage-redteam")


@login_required
@require_POST
def manage_eval_run_start(request: HttpRequest) -> HttpResponse:
    return _start(
        request,
        EvalRunForm(request.POST),
        "eval_form",
        lambda run: f"Test-set run {run.pk} started: {run.total} test attacks to answer.",
    )


@login_required
@require_POST
def manage_safe_replies_request(request: HttpRequest) -> HttpResponse:
    form = SafeRepliesForm(request.POST)
    return _start(
        request,
        form,
        "safe_form",
        lambda done: (
            f"Generation job {done.job.pk} writes {form.cleaned_data['samples']} candidates for "
            f"{len(done.attacks)} attack(s); queue {done.queue.name!r} gets them once it finishes."
        ),
    )
