"""Template pages of the model runner."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from model_runner import selectors
from model_runner.models import GenerationJob


@login_required
def manage_generation(request: HttpRequest) -> HttpResponse:
    """Admins watch generation jobs; the page reloads itself every 2 s while any job is unfinished."""
    user = request.user
    if not (getattr(user, "role", None) == "admin" or user.is_superuser):
        raise PermissionDenied("Only admins may watch generation.")
    jobs = list(selectors.generation_job_list()[:50])
    rows = [{"job": job, **selectors.generation_job_stats(job=job)} for job in jobs]
    active = any(job.status in {GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING} for job in jobs)
    return render(request, "model_runner/manage_generation.html", {"rows": rows, "active": active})
