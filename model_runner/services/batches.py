"""The batch worker: generate a batch's missing samples, save them, settle the job's progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction

from comparisons.models import Candidate, Prompt
from model_runner.backends.base import BackendError, GenerationRequest, PromptOutcome, sampling_merge
from model_runner.models import GenerationJob, Generator
from model_runner.services.batch_claims import (
    generation_batch_progress,
    generation_batch_release,
    generation_batch_take,
)
from model_runner.services.job_status import FINISHED, generation_job_settle

Status = GenerationJob.Status


def _missing_samples(
    *, prompt_ids: Sequence[int], generator: Generator, samples_per_prompt: int
) -> dict[int, list[int]]:
    """prompt id -> the sample indices (< K) that have no candidate yet (prompts with none missing left out)."""
    have: dict[int, set[int]] = {pid: set() for pid in prompt_ids}
    existing = Candidate.objects.filter(
        prompt_id__in=prompt_ids, generator=generator, sample_index__lt=samples_per_prompt
    ).values_list("prompt_id", "sample_index")
    for prompt_id, index in existing:
        have[prompt_id].add(index)
    missing = {pid: [i for i in range(samples_per_prompt) if i not in got] for pid, got in have.items()}
    return {pid: idx for pid, idx in missing.items() if idx}


def _errored(job: GenerationJob, generator: Generator) -> set[int]:
    return {
        e["prompt_id"] for e in job.errors if e.get("generator_id") == generator.pk and e.get("prompt_id")
    }


def generation_batch_run(
    *, job: GenerationJob, generator: Generator, prompt_ids: Sequence[int], worker: str = ""
) -> int:
    """Generate the missing samples of these prompts for one generator; return how many were inserted.

    Idempotent: (prompt, generator, sample_index) that exist are skipped, and the unique key makes a
    concurrent or redelivered run write nothing twice. Candidates are saved after each model batch.
    A cancelled or finished job writes nothing. A prompt that cannot be answered (too long) is
    recorded in ``job.errors`` and the rest go on; a model that cannot load fails the job.
    While it runs, the batch is recorded as taken by ``worker`` (``batch_claims``), so the stall
    check can send it again if this process dies.
    """
    job.refresh_from_db()
    if job.status in FINISHED:
        return 0
    K = job.samples_per_prompt
    skip = _errored(job, generator)
    missing = _missing_samples(
        prompt_ids=[pid for pid in prompt_ids if pid not in skip], generator=generator, samples_per_prompt=K
    )
    if not missing:
        generation_job_settle(job=job)
        return 0
    generation_job_settle(job=job, starting=True)
    if job.status in FINISHED:  # cancelled while we looked
        return 0
    key = generation_batch_take(job=job, generator=generator, prompt_ids=prompt_ids, worker=worker)
    try:
        return _generate(job=job, generator=generator, missing=missing, key=key)
    finally:
        generation_batch_release(job=job, key=key)


def _generate(*, job: GenerationJob, generator: Generator, missing: dict[int, list[int]], key: str) -> int:
    from model_runner.backends import backend_for

    prompts = {p.pk: p for p in Prompt.objects.filter(pk__in=list(missing))}
    requests = [
        GenerationRequest(prompt_id=pid, messages=prompts[pid].messages, num_samples=len(indices))
        for pid, indices in missing.items()
        if pid in prompts  # a prompt deleted since the job was made has nothing left to answer
    ]
    sampling = sampling_merge(generator.sampling, job.sampling)
    inserted = 0
    try:
        backend = backend_for(generator)
        batch_size = int((generator.options or {}).get("batch_size") or len(requests) or 1)
        for outcomes in backend.generate(requests, sampling=sampling, batch_size=batch_size):
            written = _outcomes_save(
                job=job,
                generator=generator,
                outcomes=outcomes,
                missing=missing,
                sampling=sampling,
                revision=backend.revision,
                key=key,
            )
            if written is None:  # cancelled meanwhile
                return inserted
            inserted += written
    except BackendError as exc:  # includes ModelLoadError: a readable reason, the job fails
        generation_job_settle(job=job, fatal=str(exc), generator=generator)
        return inserted
    except Exception as exc:
        # Record why on the job so it does not sit RUNNING forever, then let Celery see the failure.
        generation_job_settle(job=job, fatal=f"{type(exc).__name__}: {exc}", generator=generator)
        raise
    return inserted


def _outcomes_save(
    *,
    job: GenerationJob,
    generator: Generator,
    outcomes: list[PromptOutcome],
    missing: dict[int, list[int]],
    sampling: dict[str, Any],
    revision: str,
    key: str,
) -> int | None:
    """Insert one model batch's candidates and errors and update the job; None if the job was cancelled."""
    rows: list[Candidate] = []
    errors: list[dict[str, Any]] = []
    for outcome in outcomes:
        if outcome.error:
            errors.append(
                {
                    "prompt_id": outcome.prompt_id,
                    "generator": generator.name,
                    "generator_id": generator.pk,
                    "error": outcome.error,
                }
            )
            continue
        for index, sample in zip(missing[outcome.prompt_id], outcome.samples, strict=True):
            rows.append(
                Candidate(
                    prompt_id=outcome.prompt_id,
                    generator=generator,
                    job=job,
                    sample_index=index,
                    text=sample.text,
                    sampling=sampling,
                    seed=sample.seed,
                    model_revision=revision,
                    prompt_tokens=sample.prompt_tokens,
                    completion_tokens=sample.completion_tokens,
                    finish_reason=sample.finish_reason,
                    latency_ms=sample.latency_ms,
                )
            )
    with transaction.atomic():
        locked = GenerationJob.objects.select_for_update().get(pk=job.pk)
        if locked.status == Status.CANCELLED:
            return None
        before = Candidate.objects.filter(job=locked).count()
        Candidate.objects.bulk_create(rows, ignore_conflicts=True)
        inserted = Candidate.objects.filter(job=locked).count() - before
        if errors:
            known = {(e.get("prompt_id"), e.get("generator_id")) for e in locked.errors}
            locked.errors = [
                *locked.errors,
                *(e for e in errors if (e["prompt_id"], e["generator_id"]) not in known),
            ]
            locked.save(update_fields=["errors"])
        generation_job_settle(job=locked, locked=True)
        generation_batch_progress(job=locked, key=key)
    job.refresh_from_db()
    return inserted
