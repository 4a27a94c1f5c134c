"""The generation job lifecycle: the only module that changes ``GenerationJob.status``.

    QUEUED --first batch starts--> RUNNING --all candidates exist--> SUCCEEDED
    QUEUED / RUNNING --a batch fails or a prompt errors--> FAILED
    QUEUED / RUNNING --a person cancels--> CANCELLED
    FAILED / CANCELLED --a person retries--> QUEUED

The callers (``generation_job_cancel``, ``generation_job_retry``, the batch worker) hold the job's
row lock, or ``generation_job_settle`` takes it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from comparisons.models import Candidate
from model_runner.models import GenerationJob, Generator

Status = GenerationJob.Status
FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})


def generation_job_mark_cancelled(*, job: GenerationJob) -> None:
    """QUEUED / RUNNING -> CANCELLED (the caller holds the row lock and checked the status)."""
    job.status = Status.CANCELLED  # stopped by a person
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])


def generation_job_mark_retried(*, job: GenerationJob) -> None:
    """FAILED / CANCELLED -> QUEUED, errors cleared (the caller holds the row lock and checked)."""
    job.status = Status.QUEUED  # retried: the missing batches are enqueued again
    job.errors = []
    job.finished_at = None
    job.save(update_fields=["status", "errors", "finished_at"])


def generation_job_settle(
    *,
    job: GenerationJob,
    starting: bool = False,
    fatal: str | None = None,
    generator: Generator | None = None,
    locked: bool = False,
) -> None:
    """Recompute the job's progress from the candidates and move its status (QUEUED -> RUNNING ->
    SUCCEEDED or FAILED).

    Progress is recomputed from the database (not incremented), so a redelivered batch cannot count
    twice. The job finishes once every (prompt, generator) pair has K candidates or an error.
    """
    if not locked:
        with transaction.atomic():
            row = GenerationJob.objects.select_for_update().get(pk=job.pk)
            generation_job_settle(job=row, starting=starting, fatal=fatal, generator=generator, locked=True)
        job.refresh_from_db()
        return
    if job.status in FINISHED:
        return
    now = timezone.now()
    K = job.samples_per_prompt
    prompt_ids = job.prompts.values("pk")
    generator_ids = job.generators.values("pk")
    in_job = Candidate.objects.filter(
        prompt_id__in=prompt_ids, generator_id__in=generator_ids, sample_index__lt=K
    ).order_by()  # no ordering: it would join the GROUP BY below
    job.done = in_job.count()
    made_here = Candidate.objects.filter(job=job).aggregate(
        tokens=Sum("completion_tokens"), ms=Sum("latency_ms")
    )
    job.completion_tokens = made_here["tokens"] or 0
    job.generation_seconds = (made_here["ms"] or 0) / 1000
    if job.started_at is None and (starting or fatal):
        job.started_at = now
    if job.status == Status.QUEUED and starting:
        job.status = Status.RUNNING  # at least one batch started

    if fatal is not None:
        entry: dict[str, Any] = {"error": fatal}
        if generator is not None:
            entry = {"generator": generator.name, "generator_id": generator.pk, **entry}
        job.errors = [*job.errors, entry]
        job.status = Status.FAILED  # a batch failed; errors say why
        job.finished_at = now
    else:
        pairs = job.prompts.count() * job.generators.count()
        complete = in_job.values("prompt_id", "generator_id").annotate(n=Count("id")).filter(n__gte=K).count()
        errored = {(e["prompt_id"], e["generator_id"]) for e in job.errors if e.get("prompt_id")}
        if errored:
            # An errored pair that got all its samples after all (e.g. a later retry) counts once.
            complete_errored = (
                in_job.filter(prompt_id__in=[p for p, _ in errored])
                .values("prompt_id", "generator_id")
                .annotate(n=Count("id"))
                .filter(n__gte=K)
                .values_list("prompt_id", "generator_id")
            )
            errored -= set(complete_errored)
        if complete + len(errored) >= pairs:
            # every candidate exists / a prompt failed, errors say why
            job.status = Status.FAILED if errored else Status.SUCCEEDED
            job.finished_at = now
            job.started_at = job.started_at or now
    job.save(
        update_fields=[
            "done",
            "completion_tokens",
            "generation_seconds",
            "status",
            "started_at",
            "finished_at",
            "errors",
        ]
    )
