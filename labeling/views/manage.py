"""Admin dashboards for queues (template pages). Raters never reach these."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from comparisons.forms import PromptChoiceForm
from labeling import services
from labeling.errors import ApplicationError
from labeling.models import Queue, Rubric, User
from labeling.selectors import dashboards


def _require_staff_role(request: HttpRequest) -> None:
    user: User = request.user  # type: ignore[assignment]
    if not (user.is_admin_role or user.role == User.Role.RESEARCHER):
        raise PermissionDenied("Only admins and researchers see queue dashboards.")


@login_required
def manage_queues(request: HttpRequest) -> HttpResponse:
    _require_staff_role(request)
    queues = list(Queue.objects.select_related("rubric").order_by("-priority", "id"))
    rows = [{"queue": q, **dashboards.queue_progress(queue=q)} for q in queues]
    return render(request, "labeling/manage_queues.html", {"rows": rows})


@login_required
def manage_queue(request: HttpRequest, queue_id: int) -> HttpResponse:
    _require_staff_role(request)
    queue = get_object_or_404(Queue.objects.select_related("rubric", "qualification"), pk=queue_id)
    throughput = dashboards.queue_throughput(queue=queue)
    peak = max((h["n"] for h in throughput), default=0) or 1
    bars = [
        {
            "x": i * 24,
            "y": 110 - round(100 * h["n"] / peak),
            "h": round(100 * h["n"] / peak),
            "n": h["n"],
            "label": h["hour"].strftime("%H:00"),
        }
        for i, h in enumerate(throughput)
    ]
    context = {
        "queue": queue,
        "progress": dashboards.queue_progress(queue=queue),
        "bars": bars,
        "peak": peak,
        "quality": dashboards.queue_raters(queue=queue),
    }
    return render(request, "labeling/manage_queue.html", context)


class QueueCreateForm(PromptChoiceForm):
    """The page's form: the same request as ``POST /api/v1/queues/``."""

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(
        choices=[(k.value, k.label) for k in (Queue.Kind.PAIRWISE, Queue.Kind.RANKING)],
        initial=Queue.Kind.PAIRWISE,
    )
    rubric = forms.ModelChoiceField(queryset=Rubric.objects.order_by("name", "-version"))
    overlap = forms.IntegerField(
        initial=3,
        min_value=1,
        max_value=50,
        help_text="Judgments wanted per comparison; 2 or more measure agreement.",
    )
    pairing = forms.ChoiceField(choices=Queue.Pairing.choices, initial=Queue.Pairing.ALL_PAIRS)
    size = forms.IntegerField(
        required=False,
        min_value=2,
        max_value=9,
        help_text="Responses per ranking task (K); pairs are always 2.",
    )
    members = forms.ModelMultipleChoiceField(
        queryset=User.objects.filter(role=User.Role.RATER, is_active=True).order_by("username"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Raters who may work on it.",
    )
    guidelines = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text="Markdown."
    )
    content_warning = forms.CharField(
        required=False,
        max_length=500,
        help_text="Shown before each item; responses stay blurred until revealed.",
    )
    lease_seconds = forms.IntegerField(required=False, min_value=30, help_text="Empty: 15 minutes.")
    max_open_leases = forms.IntegerField(initial=1, min_value=1, max_value=50)
    skip_policy = forms.ChoiceField(choices=Queue.SkipPolicy.choices, initial=Queue.SkipPolicy.OTHERS)
    gold_rate = forms.FloatField(
        initial=0.0, min_value=0.0, max_value=1.0, help_text="Share of gold items served."
    )
    priority = forms.IntegerField(initial=0)
    qualification = forms.ModelChoiceField(
        queryset=Queue.objects.order_by("name"),
        required=False,
        help_text="A queue whose gold items a rater must pass first.",
    )

    def create(self) -> Queue:
        data = self.cleaned_data
        return services.queue_create(
            name=data["name"].strip(),
            rubric=data["rubric"],
            prompts=self.chosen_prompts(),
            members=data["members"],
            qualification=data["qualification"],
            **{key: data[key] for key in services.QUEUE_SETTINGS},
        )


@login_required
def manage_queue_new(request: HttpRequest) -> HttpResponse:
    """Admins create a queue and its items from prompts' candidates (all or nothing)."""
    user: User = request.user  # type: ignore[assignment]
    if not user.is_admin_role:
        raise PermissionDenied("Only admins create queues.")
    form = QueueCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                queue = form.create()
            except ApplicationError as exc:
                form.add_service_error(exc.field, exc.message)
            else:
                items = queue.items.count()
                messages.success(request, f"Queue '{queue.name}' created with {items} items.")
                if not items:
                    messages.warning(
                        request,
                        "No item could be built: the chosen prompts have too few candidates each. "
                        "Generate or import responses, then add the prompts again (POST /api/v1/queues/{id}/items/).",
                    )
                return redirect("manage-queue", queue_id=queue.pk)
        status = 400
    return render(request, "labeling/manage_queue_new.html", {"form": form}, status=status)
