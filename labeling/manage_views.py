"""Admin dashboards for queues (template pages). Raters never reach these."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from labeling import dashboards
from labeling.models import Queue, User


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
