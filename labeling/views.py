"""Template pages for raters. They call the same services as the API."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from labeling import selectors, services
from labeling.apis_common import ApplicationError
from labeling.models import Assignment, Criterion, Queue, User

SCALE = [
    (-3, "A is much better"),
    (-2, "A is better"),
    (-1, "A is slightly better"),
    (0, "Tie"),
    (1, "B is slightly better"),
    (2, "B is better"),
    (3, "B is much better"),
]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if user.is_admin_role:
        return redirect("manage-generation")
    if user.role == User.Role.RESEARCHER:
        return redirect("export-page")
    return redirect("rate-home")


@login_required
def rate_home(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    queues = list(Queue.objects.filter(members=user, status=Queue.Status.ACTIVE).order_by("-priority", "id"))
    stats = selectors.queue_stats_for_rater(rater=user, queues=queues)
    rows = [{"queue": q, **stats[q.pk]} for q in queues]
    return render(request, "labeling/rate_home.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def rate_queue(request: HttpRequest, queue_id: int) -> HttpResponse:
    """Claim the next item (or the one already held) and show it."""
    user: User = request.user  # type: ignore[assignment]
    queue = get_object_or_404(Queue, pk=queue_id, members=user)
    try:
        assignment = services.assignment_claim_next(rater=user, queue=queue)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("rate-home")
    if assignment is None:
        return render(request, "labeling/rate_done.html", {"queue": queue})
    return redirect("rate-assignment", assignment_id=assignment.pk)


def _criteria_answers(post: Any, criteria: list[Criterion], labels: list[str]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for c in criteria:
        name = f"criterion-{c.key}"
        if c.kind == Criterion.Kind.PREFERENCE:
            raw = post.get(name, "")
            answers[c.key] = int(raw) if raw.lstrip("-").isdigit() else None
        elif c.kind == Criterion.Kind.LIKERT:
            scores = {
                lab: int(post[f"{name}-{lab}"]) for lab in labels if post.get(f"{name}-{lab}", "").isdigit()
            }
            answers[c.key] = scores or None
        elif c.kind == Criterion.Kind.FLAG:
            answers[c.key] = post.get(name) == "on"
        else:
            answers[c.key] = post.get(name, "").strip() or None
    return answers


@login_required
@require_http_methods(["GET", "POST"])
def rate_assignment(request: HttpRequest, assignment_id: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    assignment = selectors.assignment_get_for_rater(rater=user, assignment_id=assignment_id)
    queue = assignment.item.queue
    payload = selectors.assignment_payload(assignment)
    labels = [r["label"] for r in payload["responses"]]
    criteria = list(queue.rubric.criteria.all())
    status_code = 200
    if request.method == "POST":
        if request.POST.get("action") == "skip":
            services.assignment_skip(assignment=assignment, reason=request.POST.get("skip_reason", ""))
            messages.info(request, "Skipped.")
            return redirect("rate-queue", queue_id=queue.pk)
        raw_pref = request.POST.get("preference", "")
        raw_active = request.POST.get("active_seconds", "")
        try:
            _, created = services.judgment_submit(
                assignment=assignment,
                preference=int(raw_pref) if raw_pref.lstrip("-").isdigit() else None,
                criteria=_criteria_answers(request.POST, criteria, labels),
                rationale=request.POST.get("rationale", ""),
                active_seconds=float(raw_active) if raw_active.replace(".", "", 1).isdigit() else None,
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            status_code = exc.status_code
        else:
            messages.success(request, "Saved." if created else "Already saved.")
            return redirect("rate-queue", queue_id=queue.pk)
    if assignment.status != Assignment.Status.LEASED:
        return redirect("rate-queue", queue_id=queue.pk)
    context = {
        "assignment": assignment,
        "queue": queue,
        "payload": payload,
        "scale": SCALE,
        "criteria": criteria,
        "labels": labels,
        "likert": range(1, 8),
        "posted": request.POST if request.method == "POST" else {},
        "submit_url": reverse("rate-assignment", args=[assignment.pk]),
        "payload_json": json.dumps({"id": assignment.pk}),
    }
    return render(request, "labeling/rate_assignment.html", context, status=status_code)
