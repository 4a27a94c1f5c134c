"""Admin and researcher queue pages: the list, a queue's dashboard, and (admins only) a new queue,
pausing, resuming, closing or reopening one, its safe settings and its members. The writes call
the same services as the API (``POST /api/v1/queues/``, ``PATCH /api/v1/queues/{id}/``)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from comparisons.services import LeftOut
from labeling.errors import ApplicationError
from labeling.models import Queue, User
from labeling.selectors import dashboards
from labeling.selectors.pauses import queue_pauses
from labeling.selectors.queue_stats import queue_stats
from labeling.services import queue_admin
from labeling.views import stats_charts
from labeling.views.queue_forms import QueueCreateForm, QueueMembersForm, QueueSettingsForm

#: The buttons that move a queue's status, by the status they move it to.
STATUS_ACTIONS = {
    (Queue.Status.ACTIVE, Queue.Status.PAUSED): "Pause",
    (Queue.Status.PAUSED, Queue.Status.ACTIVE): "Resume",
    (Queue.Status.ACTIVE, Queue.Status.CLOSED): "Close",
    (Queue.Status.PAUSED, Queue.Status.CLOSED): "Close",
    (Queue.Status.CLOSED, Queue.Status.ACTIVE): "Reopen",
}
STATUS_DONE = {
    Queue.Status.ACTIVE: "is active: it hands out work again.",
    Queue.Status.PAUSED: "is paused: it hands out nothing until resumed; items already held can still be submitted.",
    Queue.Status.CLOSED: "is closed: it hands out nothing; items already held can still be submitted.",
}


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _require_staff_role(request: HttpRequest) -> None:
    user = _user(request)
    if not (user.is_admin_role or user.role == User.Role.RESEARCHER):
        raise PermissionDenied("Only admins and researchers see queue dashboards.")


def _require_admin(request: HttpRequest) -> None:
    if not _user(request).is_admin_role:
        raise PermissionDenied("Only admins change queues; researchers see their dashboards.")


def status_actions(queue: Queue) -> list[dict[str, str]]:
    """The status buttons a queue offers now: [{"status": "paused", "label": "Pause"}, ...]."""
    return [
        {"status": to, "label": label}
        for (start, to), label in STATUS_ACTIONS.items()
        if start == queue.status
    ]


@login_required
def manage_queues(request: HttpRequest) -> HttpResponse:
    _require_staff_role(request)
    queues = list(Queue.objects.select_related("rubric").order_by("-priority", "id"))
    rows = [{"queue": q, "actions": status_actions(q), **dashboards.queue_progress(queue=q)} for q in queues]
    return render(request, "labeling/manage_queues.html", {"rows": rows})


def _queue(queue_id: int) -> Queue:
    return get_object_or_404(Queue.objects.select_related("rubric", "qualification"), pk=queue_id)


def _dashboard(
    request: HttpRequest,
    queue: Queue,
    *,
    settings_form: QueueSettingsForm | None = None,
    members_form: QueueMembersForm | None = None,
    status: int = 200,
) -> HttpResponse:
    stats = queue_stats(queue=queue)
    throughput = stats["throughput"]
    peak = max((h["n"] for h in throughput), default=0)
    scale = peak or 1  # an empty chart draws empty bars, and says so
    bars = [
        {
            "x": i * 24,
            "y": 110 - round(100 * h["n"] / scale),
            "h": round(100 * h["n"] / scale),
            "n": h["n"],
            "label": h["hour"].strftime("%H:00"),
        }
        for i, h in enumerate(throughput)
    ]
    quality = {key: stats[key] for key in ("overall_agreement", "agreement_pairs", "raters")}
    context: dict[str, Any] = {
        "queue": queue,
        "computed_at": stats["computed_at"],
        "progress": stats["progress"],
        "bars": bars,
        "peak": peak,
        "last_day": sum(h["n"] for h in throughput),
        "quality": quality,
        "position_bias": stats["position_bias"],
        "rates": stats["rates"],
        "raters": stats["raters"],
        "agreement": stats["agreement"],
        "alpha_chart": stats_charts.alpha_chart(stats["agreement"]),
        "side_chart": stats_charts.side_chart(stats["position_bias"]),
        "members": list(queue.members.order_by("username")),
        "pauses": queue_pauses(queue=queue),
    }
    if _user(request).is_admin_role:
        context |= {
            "actions": status_actions(queue),
            "settings_form": settings_form or QueueSettingsForm(queue=queue),
            "members_form": members_form or QueueMembersForm(queue=queue),
        }
    return render(request, "labeling/manage_queue.html", context, status=status)


@login_required
def manage_queue(request: HttpRequest, queue_id: int) -> HttpResponse:
    """A queue's dashboard: progress, throughput, agreement per criterion, position bias, rater
    trust; for admins also its controls."""
    _require_staff_role(request)
    return _dashboard(request, _queue(queue_id))


@login_required
@require_POST
def manage_queue_status(request: HttpRequest, queue_id: int) -> HttpResponse:
    """Pause, resume, close or reopen (``queue_set_status``), then back to where the button was."""
    _require_admin(request)
    queue = _queue(queue_id)
    try:
        queue_admin.queue_set_status(queue=queue, status=request.POST.get("status", ""))
    except ApplicationError as exc:
        messages.error(request, f"Queue '{queue.name}': {exc.message}")
    else:
        messages.success(request, f"Queue '{queue.name}' {STATUS_DONE[Queue.Status(queue.status)]}")
    if request.POST.get("next") == reverse("manage-queues"):
        return redirect("manage-queues")
    return redirect("manage-queue", queue_id=queue.pk)


@login_required
@require_POST
def manage_queue_settings(request: HttpRequest, queue_id: int) -> HttpResponse:
    """Save the safe settings (``queue_update_settings``); an error re-renders the dashboard."""
    _require_admin(request)
    queue = _queue(queue_id)
    form = QueueSettingsForm(request.POST, queue=queue)
    if form.is_valid():
        try:
            changed = form.changes()
            queue_admin.queue_update_settings(queue=queue, **changed)
        except ApplicationError as exc:
            form.add_service_error(exc.field, exc.message)
        else:
            what = ", ".join(key.replace("_", " ") for key in changed) or "nothing changed"
            messages.success(request, f"Queue '{queue.name}' settings saved ({what}).")
            return redirect("manage-queue", queue_id=queue.pk)
    return _dashboard(request, queue, settings_form=form, status=400)


@login_required
@require_POST
def manage_queue_members(request: HttpRequest, queue_id: int) -> HttpResponse:
    """Set the members (``queue_set_members``); an unknown username or group re-renders the dashboard."""
    _require_admin(request)
    queue = _queue(queue_id)
    form = QueueMembersForm(request.POST, queue=queue)
    if form.is_valid():
        try:
            queue_admin.queue_set_members(queue=queue, users=form.users())
        except ApplicationError as exc:
            form.add_service_error(exc.field, exc.message)
        else:
            count = queue.members.count()
            messages.success(
                request, f"Queue '{queue.name}' now has {count} member{'s' if count != 1 else ''}."
            )
            return redirect("manage-queue", queue_id=queue.pk)
    return _dashboard(request, queue, members_form=form, status=400)


def left_out_text(left_out: LeftOut) -> str:
    """What dedupe left out, in words."""
    parts = [
        f"{n} {what}"
        for n, what in (
            (left_out.pairs, "pair(s) of identical or repeated texts"),
            (left_out.duplicates, "repeated response(s), each tied with the copy shown"),
            (left_out.prompts, "prompt(s) with too few different responses"),
        )
        if n
    ]
    return "Left out: " + "; ".join(parts) + "."


@login_required
def manage_queue_new(request: HttpRequest) -> HttpResponse:
    """Admins create a queue and its items from prompts' candidates (all or nothing)."""
    if not _user(request).is_admin_role:
        raise PermissionDenied("Only admins create queues.")
    form = QueueCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                created = form.create()
            except ApplicationError as exc:
                form.add_service_error(exc.field, exc.message)
            else:
                # A queue no item could be built for is refused by the service (``prompts``).
                queue, items, left_out = created.queue, created.items.added, created.items.left_out
                messages.success(request, f"Queue '{queue.name}' created with {items} items.")
                if left_out.pairs or left_out.duplicates or left_out.prompts:
                    messages.info(request, left_out_text(left_out))
                return redirect("manage-queue", queue_id=queue.pk)
        status = 400
    return render(request, "labeling/manage_queue_new.html", {"form": form}, status=status)
