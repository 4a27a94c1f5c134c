"""Template pages of the model runner."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from labeling.apis_common import ApplicationError
from model_runner import selectors, services
from model_runner.models import GenerationJob


def _require_admin(request: HttpRequest) -> None:
    user = request.user
    if not (getattr(user, "role", None) == "admin" or user.is_superuser):
        raise PermissionDenied("Only admins may watch generation.")


@login_required
def manage_generation(request: HttpRequest) -> HttpResponse:
    """Admins watch generation jobs; the page reloads itself every 2 s while any job is unfinished."""
    _require_admin(request)
    jobs = list(selectors.generation_job_list()[:50])
    rows = [{"job": job, **selectors.generation_job_stats(job=job)} for job in jobs]
    active = any(job.status in {GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING} for job in jobs)
    return render(request, "model_runner/manage_generation.html", {"rows": rows, "active": active})


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
