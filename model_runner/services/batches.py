"""The batch worker: generate a batch's missing samples, save them, settle the job's progress and status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from comparisons.models import Candidate, Prompt
from model_runner.backends.base import BackendError, GenerationRequest, PromptOutcome, sampling_merge
from model_runner.models import GenerationJob, Generator

Status = GenerationJob.Status
FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})


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


def generation_batch_run(*, job: GenerationJob, generator: Generator, prompt_ids: Sequence[int]) -> int:
    """Generate the missing samples of these prompts for one generator; return how many were inserted.

    Idempotent: (prompt, generator, sample_index) that exist are skipped, and the unique key makes a
    concurrent or redelivered run write nothing twice. Candidates are saved after each model batch.
    A cancelled or finished job writes nothing. A prompt that cannot be answered (too long) is
    recorded in ``job.errors`` and the rest go on; a model that cannot load fails the job.
    """
    from model_runner.backends import backend_for

    job.refresh_from_db()
    if job.status in FINISHED:
        return 0
    K = job.samples_per_prompt
    skip = _errored(job, generator)
    missing = _missing_samples(
        prompt_ids=[pid for pid in prompt_ids if pid not in skip], generator=generator, samples_per_prompt=K
    )
    if not missing:
        _job_settle(job=job)
        return 0
    _job_settle(job=job, starting=True)
    if job.status in FINISHED:  # cancelled while we looked
        return 0

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
            )
            if written is None:  # cancelled meanwhile
                return inserted
            inserted += written
    except BackendError as exc:  # includes ModelLoadError: a readable reason, the job fails
        _job_settle(job=job, fatal=str(exc), generator=generator)
        return inserted
    except Exception as exc:
        # Record why on the job so it does not sit RUNNING forever, then let Celery see the failure.
        _job_settle(job=job, fatal=f"{type(exc).__name__}: {exc}", generator=generator)
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
        _job_settle(job=locked, locked=True)
    job.refresh_from_db()
    return inserted


def _job_settle(
    *,
    job: GenerationJob,
    starting: bool = False,
    fatal: str | None = None,
    generator: Generator | None = None,
    locked: bool = False,
) -> None:
    """Recompute the job's progress from the candidates and move its status. The only place besides
    ``generation_job_cancel`` that writes ``status``.

    Progress is recomputed from the database (not incremented), so a redelivered batch cannot count
    twice. The job finishes once every (prompt, generator) pair has K candidates or an error.
    """
    if not locked:
        with transaction.atomic():
            row = GenerationJob.objects.select_for_update().get(pk=job.pk)
            _job_settle(job=row, starting=starting, fatal=fatal, generator=generator, locked=True)
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
