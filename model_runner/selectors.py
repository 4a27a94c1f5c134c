"""Reads of the model runner: jobs, generators, prompt selection, job statistics, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from labeling.errors import ApplicationError, id_or_none
from model_runner.models import GenerationJob, Generator

FINISHED = {GenerationJob.Status.SUCCEEDED, GenerationJob.Status.FAILED, GenerationJob.Status.CANCELLED}


def generation_job_list() -> QuerySet[GenerationJob]:
    return GenerationJob.objects.prefetch_related("generators").order_by("-id")


def generation_job_get(*, job_id: int) -> GenerationJob:
    """The job or a 404 ``ApplicationError``."""
    job = generation_job_list().filter(pk=job_id).first()
    if job is None:
        raise ApplicationError(f"generation job {job_id} not found", status_code=404)
    return job


def generator_list() -> QuerySet[Generator]:
    return Generator.objects.order_by("name")


def generator_get(*, generator_id: int) -> Generator:
    """The generator or a 404 ``ApplicationError``."""
    generator = Generator.objects.filter(pk=generator_id).first()
    if generator is None:
        raise ApplicationError(f"generator {generator_id} not found", status_code=404)
    return generator


def generators_resolve(*, refs: Sequence[int | str]) -> list[Generator]:
    """Generators by id (numbers) or name (strings), in the given order; unknown ones name themselves."""
    found: list[Generator] = []
    unknown: list[str] = []
    pk_field = Generator._meta.get_field("id")
    for ref in refs:
        pk = id_or_none(ref, pk_field)
        generator = Generator.objects.filter(pk=pk).first() if pk is not None else None
        if generator is None and isinstance(ref, str):
            generator = Generator.objects.filter(name=ref).first()
        if generator is None:
            unknown.append(str(ref))
        else:
            found.append(generator)
    if unknown:
        raise ApplicationError(f"generators: unknown generator(s): {', '.join(unknown)}", field="generators")
    return found


def generation_job_stats(*, job: GenerationJob) -> dict[str, Any]:
    """Progress figures for a job: progress (0..1), tokens_per_second, eta_seconds (None if unknown)."""
    tokens_per_second = (
        (job.completion_tokens / job.generation_seconds) if job.generation_seconds > 0 else None
    )
    eta: float | None = None
    if job.status == GenerationJob.Status.RUNNING and job.started_at and job.done:
        elapsed = (timezone.now() - job.started_at).total_seconds()
        eta = max(0.0, elapsed / job.done * (job.total - job.done))
    elif job.status in FINISHED:
        eta = 0.0
    return {
        "progress": job.progress,
        "tokens_per_second": round(tokens_per_second, 1) if tokens_per_second is not None else None,
        "eta_seconds": round(eta) if eta is not None else None,
    }


def generation_job_wait(
    *,
    job: GenerationJob,
    on_progress: Callable[[GenerationJob], None] | None = None,
    poll_seconds: float = 0.5,
    timeout: float | None = None,
) -> GenerationJob:
    """Poll the database until the job finishes (succeeded, failed or cancelled); return it refreshed.

    Calls ``on_progress(job)`` after each poll. Raises ``TimeoutError`` after ``timeout`` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job.refresh_from_db()
        if on_progress is not None:
            on_progress(job)
        if job.status in FINISHED:
            return job
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"generation job {job.pk} still {job.status} after {timeout} s")
        time.sleep(poll_seconds)
