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


def generator_queues(*, database: bool = True) -> tuple[set[str], set[str]]:
    """(queues whose generators run a model on this machine, queues the bundled generator runs on).

    ``gpu`` is always in the first (every generator's default queue), and is the second while the
    bundled generator has not been made yet (it is made on the ``gpu`` queue). Generators behind an endpoint (``openai``) need no local model. With
    ``database=False`` (the database is unreachable) only that default is known.
    """
    local: set[str] = {"gpu"}
    if not database:
        return local, {"gpu"}
    bundled: set[str] = set()
    bundled_made = False
    for backend, queue, active in Generator.objects.values_list("backend", "queue", "is_active"):
        bundled_made = bundled_made or backend == Generator.Backend.BUNDLED
        if active and backend in (Generator.Backend.BUNDLED, Generator.Backend.TRANSFORMERS):
            local.add(queue)
        if active and backend == Generator.Backend.BUNDLED:
            bundled.add(queue)
    return local, (bundled if bundled_made else {"gpu"})


#: How long the queues that live workers serve are remembered (every web process shares the cache),
#: and how long Celery's remote control waits for workers to answer when it asks again.
LIVE_QUEUES_CACHE_SECONDS = 30
LIVE_QUEUES_INSPECT_SECONDS = 1.0
_LIVE_QUEUES_KEY = "preflab:model_runner:live-queues"


def _remote_control_works() -> bool:
    """Celery's remote control needs a broker with broadcast (Redis, RabbitMQ); tasks run eagerly
    have no worker at all. kombu's filesystem transport has no broadcast, so nothing can be known."""
    from model_runner.tasks import generation_batch_task

    conf = generation_batch_task.app.conf
    return not conf.task_always_eager and not str(conf.broker_url or "").startswith("filesystem")


def _active_queues() -> dict[str, Any] | None:
    """``inspect().active_queues()``: worker name -> the queues it consumes (None: no reply)."""
    from model_runner.tasks import generation_batch_task

    replies: dict[str, Any] | None = generation_batch_task.app.control.inspect(
        timeout=LIVE_QUEUES_INSPECT_SECONDS
    ).active_queues()
    return replies


def live_queues() -> set[str] | None:
    """The queues at least one live worker consumes, or None where that cannot be known (the
    filesystem broker, eager tasks, a broker that does not answer). Asked at most once per
    ``LIVE_QUEUES_CACHE_SECONDS`` (the answer costs up to ``LIVE_QUEUES_INSPECT_SECONDS``)."""
    from django.core.cache import cache
    from kombu.exceptions import OperationalError

    if not _remote_control_works():
        return None
    cached = cache.get(_LIVE_QUEUES_KEY)
    if cached is not None:
        return set(cached)
    try:
        replies = _active_queues() or {}
    except (OperationalError, OSError):
        return None  # the broker is down: /readyz and worker_check say so
    names = sorted({queue["name"] for queues in replies.values() for queue in queues or []})
    cache.set(_LIVE_QUEUES_KEY, names, LIVE_QUEUES_CACHE_SECONDS)
    return set(names)


def generation_job_notice(*, job: GenerationJob) -> str | None:
    """What a queued or running job is waiting for, when no live worker serves one of its
    generators' queues (its batches wait there until one starts); None otherwise or when unknown."""
    if job.status not in (GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING):
        return None
    live = live_queues()
    if live is None:
        return None
    waiting: dict[str, list[str]] = {}
    for generator in job.generators.all():
        if generator.queue not in live:
            waiting.setdefault(generator.queue, []).append(generator.name)
    if not waiting:
        return None
    parts = [
        f"no worker serves the queue {queue!r} ({', '.join(sorted(names))}): start one with "
        f"celery -A labeling worker -Q {queue}"
        for queue, names in sorted(waiting.items())
    ]
    return "Waiting: " + "; ".join(parts) + ". Its batches wait in the queue until then."


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
