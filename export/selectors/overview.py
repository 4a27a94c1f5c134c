"""Reads behind ``/manage/``: each area's state at a glance. Here, in export, because export is the
one app that may read all four (comparisons <- model_runner <- labeling <- export); each read
below asks only its own area's tables, through that app's selectors where one exists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Max, Q
from django.utils import timezone

from comparisons.models import Candidate, Prompt
from export.models import ExportRun
from export.selectors.runs import export_run_list
from labeling.models import Queue
from labeling.selectors.dashboards import queue_progress
from model_runner import selectors as runner_selectors
from model_runner.models import GenerationJob, Generator

#: How many queues and exports the overview lists (the areas' own pages list them all).
QUEUES_SHOWN = 8
EXPORTS_SHOWN = 5


def overview_queues() -> dict[str, Any]:
    """Queues still in play (active, then paused; by priority) with their progress, and how many
    queues there are in each status."""
    counts = dict(Queue.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    open_queues = Queue.objects.exclude(status=Queue.Status.CLOSED).select_related("rubric")
    ordered = sorted(open_queues, key=lambda q: (q.status != Queue.Status.ACTIVE, -q.priority, q.pk))
    return {
        "rows": [{"queue": q, **queue_progress(queue=q)} for q in ordered[:QUEUES_SHOWN]],
        "more": max(0, len(ordered) - QUEUES_SHOWN),
        "counts": {status: counts.get(status, 0) for status in Queue.Status.values},
    }


def overview_generation() -> dict[str, Any]:
    """Jobs queued or running (with progress and ETA), and the last one that finished."""
    active = [GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING]
    jobs = runner_selectors.generation_job_list()
    return {
        "active": [
            {"job": job, **runner_selectors.generation_job_stats(job=job)}
            for job in jobs.filter(status__in=active)
        ],
        "last_finished": jobs.exclude(status__in=active).first(),
    }


def overview_imports(*, now: Any = None) -> dict[str, Any]:
    """What there is to judge: prompts (new in the last day, the newest), collections, responses by
    where they came from, and how many prompts have the two responses a comparison needs."""
    since = (now or timezone.now()) - timedelta(days=1)
    prompts = Prompt.objects.aggregate(
        total=Count("id"), last_day=Count("id", filter=Q(created_at__gte=since)), newest=Max("created_at")
    )
    candidates = Candidate.objects.aggregate(
        total=Count("id"),
        imported=Count("id", filter=Q(generator__backend=Generator.Backend.IMPORTED)),
        human=Count("id", filter=Q(author__isnull=False) | Q(generator__backend=Generator.Backend.HUMAN)),
        last_day=Count("id", filter=Q(created_at__gte=since)),
    )
    candidates["generated"] = candidates["total"] - candidates["imported"] - candidates["human"]
    ready = Prompt.objects.annotate(n=Count("candidates")).filter(n__gte=2).count()
    return {
        "prompts": prompts,
        "collections": Prompt.objects.exclude(collection="").values("collection").distinct().count(),
        "candidates": candidates,
        "ready": ready,
        "waiting": prompts["total"] - ready,
    }


def overview_exports() -> dict[str, Any]:
    """The newest runs, and how many are queued or running."""
    active = [ExportRun.Status.QUEUED, ExportRun.Status.RUNNING]
    return {
        "runs": list(export_run_list()[:EXPORTS_SHOWN]),
        "active": ExportRun.objects.filter(status__in=active).count(),
        "total": ExportRun.objects.count(),
    }
