"""Writes of generation jobs: create, split into batches, enqueue, cancel, retry, resume, run inline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction

from comparisons.models import Prompt
from labeling.errors import ApplicationError, Conflict, column_check
from model_runner.backends import GENERATING_BACKENDS
from model_runner.backends.base import SamplingError, sampling_validate
from model_runner.models import GenerationJob, Generator
from model_runner.services.batches import _missing_samples, generation_batch_run
from model_runner.services.job_status import (
    FINISHED,
    Status,
    generation_job_mark_cancelled,
    generation_job_mark_retried,
    generation_job_settle,
)

MAX_SAMPLES_PER_PROMPT = 16
MAX_BATCH_SIZE = 256


def _prompt_size(prompt: Prompt) -> int:
    # Characters stand in for tokens here: the web process has no tokenizer.
    return sum(len(str(m.get("content", ""))) for m in prompt.messages)


def generation_job_create(
    *,
    prompts: Iterable[Prompt],
    generators: Iterable[Generator],
    samples_per_prompt: int = 4,
    sampling: dict[str, Any] | None = None,
    batch_size: int = 16,
    created_by: Any = None,
    enqueue: bool = True,
) -> GenerationJob:
    """Create a job of prompts x generators x K samples and enqueue its batches.

    One ``generation_batch_task`` per (generator, chunk of ``batch_size`` prompts of similar
    length), sent after the transaction commits. With ``enqueue=False`` nothing is sent (the caller
    runs the batches itself, see ``generation_job_batches``). ``samples_per_prompt`` (1..16) and
    ``batch_size`` (1..256) are whole numbers (``column_check``). Raises ``ApplicationError``
    naming the field on bad input; nothing is written then.
    """
    prompt_list = list({p.pk: p for p in prompts}.values())
    generator_list = list({g.pk: g for g in generators}.values())
    samples_per_prompt = column_check(
        GenerationJob._meta.get_field("samples_per_prompt"),
        samples_per_prompt,
        low=1,
        high=MAX_SAMPLES_PER_PROMPT,
    )
    batch_size = column_check(
        GenerationJob._meta.get_field("batch_size"), batch_size, low=1, high=MAX_BATCH_SIZE
    )
    if not prompt_list:
        raise ApplicationError("prompts: select at least one prompt", field="prompts")
    if not generator_list:
        raise ApplicationError("generators: select at least one generator", field="generators")
    for generator in generator_list:
        if generator.backend not in GENERATING_BACKENDS:
            raise ApplicationError(
                f"generators: {generator.name!r} has backend {str(generator.backend)!r}, which does not generate "
                f"(use {', '.join(sorted(GENERATING_BACKENDS))})",
                field="generators",
            )
        if not generator.is_active:
            raise ApplicationError(f"generators: {generator.name!r} is not active", field="generators")
    try:
        clean_sampling = sampling_validate(sampling)
    except SamplingError as exc:
        raise ApplicationError(f"sampling.{exc}", field="sampling")

    with transaction.atomic():
        job = GenerationJob.objects.create(
            samples_per_prompt=samples_per_prompt,
            sampling=clean_sampling,
            batch_size=batch_size,
            total=len(prompt_list) * len(generator_list) * samples_per_prompt,
            created_by=created_by,
        )
        job.prompts.set(prompt_list)
        job.generators.set(generator_list)
        if enqueue:
            batches = generation_job_batches(job=job, prompts=prompt_list, generators=generator_list)
            transaction.on_commit(lambda: _enqueue(job.pk, batches))
    return job


def generation_job_batches(
    *,
    job: GenerationJob,
    prompts: Sequence[Prompt] | None = None,
    generators: Sequence[Generator] | None = None,
) -> list[tuple[int, list[int]]]:
    """The job's batches as (generator id, prompt ids), prompts sorted by length then id."""
    prompt_list = list(prompts) if prompts is not None else list(job.prompts.all())
    generator_list = list(generators) if generators is not None else list(job.generators.all())
    ordered = sorted(prompt_list, key=lambda p: (_prompt_size(p), p.pk))
    size = job.batch_size
    chunks = [[p.pk for p in ordered[i : i + size]] for i in range(0, len(ordered), size)]
    return [(g.pk, chunk) for g in sorted(generator_list, key=lambda g: g.pk) for chunk in chunks]


def _enqueue(job_id: int, batches: list[tuple[int, list[int]]]) -> None:
    """Send each batch to its generator's queue (``Generator.queue``, ``gpu`` unless pinned)."""
    from model_runner.tasks import generation_batch_task

    queues = dict(
        Generator.objects.filter(pk__in={g for g, _ in batches}).values_list("pk", "queue").order_by()
    )
    for generator_id, prompt_ids in batches:
        generation_batch_task.apply_async(
            (job_id, generator_id, prompt_ids), queue=queues.get(generator_id, "gpu")
        )


def generation_job_cancel(*, job: GenerationJob) -> GenerationJob:
    """Stop a queued or running job. Candidates already written stay; batches not yet saved write nothing.

    Raises ``Conflict`` when the job already finished.
    """
    with transaction.atomic():
        locked = GenerationJob.objects.select_for_update().get(pk=job.pk)
        if locked.status in FINISHED:
            raise Conflict(f"generation job {locked.pk} already {locked.status}; nothing to cancel")
        generation_job_mark_cancelled(job=locked)
    return locked


def generation_job_pending_batches(*, job: GenerationJob) -> list[tuple[int, list[int]]]:
    """The job's batches that still lack a candidate (the others are finished and stay as they are)."""
    K = job.samples_per_prompt
    generators = {g.pk: g for g in job.generators.all()}
    pending: list[tuple[int, list[int]]] = []
    for generator_id, prompt_ids in generation_job_batches(job=job):
        if _missing_samples(prompt_ids=prompt_ids, generator=generators[generator_id], samples_per_prompt=K):
            pending.append((generator_id, prompt_ids))
    return pending


def generation_job_retry(*, job: GenerationJob) -> GenerationJob:
    """Run again what a failed or cancelled job has not made yet; candidates already made are kept.

    Only the batches that still lack candidates are enqueued (after commit), and each of those
    generates only its missing samples. The job's errors are cleared: a prompt that fails again
    records its error again. Raises ``Conflict`` unless the job failed or was cancelled.
    """
    with transaction.atomic():
        locked = GenerationJob.objects.select_for_update().get(pk=job.pk)
        if locked.status not in (Status.FAILED, Status.CANCELLED):
            raise Conflict(
                f"generation job {locked.pk} is {locked.status}; only failed or cancelled jobs can be retried"
            )
        generation_job_mark_retried(job=locked)
        batches = generation_job_pending_batches(job=locked)
        if batches:
            transaction.on_commit(lambda: _enqueue(locked.pk, batches))
        else:
            generation_job_settle(job=locked, locked=True)  # nothing was missing after all
    locked.refresh_from_db()
    return locked


def generation_job_resume_all() -> int:
    """Enqueue again the batches of every unfinished job that still lack candidates; return how many.

    For brokers that lose a message taken by a worker that dies (kombu's filesystem transport, the
    one-machine default): a starting worker calls this, so a killed worker's batch is redelivered
    there too. A batch whose message is still queued runs twice at worst, and the second run finds
    nothing missing and writes nothing. Redis and RabbitMQ redeliver by themselves (``acks_late``).
    """
    count = 0
    for job in GenerationJob.objects.filter(status__in=[Status.QUEUED, Status.RUNNING]).order_by("pk"):
        batches = generation_job_pending_batches(job=job)
        if batches:
            transaction.on_commit(lambda job_id=job.pk, b=batches: _enqueue(job_id, b))  # type: ignore[misc]
            count += len(batches)
    return count


def generation_job_run_inline(*, job: GenerationJob, on_batch: Any = None) -> GenerationJob:
    """Run every batch of a job in this process (no broker), calling ``on_batch(job)`` after each.

    For ``manage.py generate``; workers use ``generation_batch_task``. Returns the refreshed job.
    """
    for generator_id, prompt_ids in generation_job_batches(job=job):
        job.refresh_from_db()
        if job.status in FINISHED:
            break
        generator = Generator.objects.get(pk=generator_id)
        generation_batch_run(job=job, generator=generator, prompt_ids=prompt_ids)
        job.refresh_from_db()
        if on_batch is not None:
            on_batch(job)
    job.refresh_from_db()
    return job
