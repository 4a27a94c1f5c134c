"""Writes of the model runner: generators, generation jobs and the batch worker.

``GenerationJob.status`` changes only here: ``_job_settle`` (RUNNING, SUCCEEDED, FAILED) and
``generation_job_cancel`` (CANCELLED).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from comparisons.models import Candidate, Prompt
from labeling.apis_common import ApplicationError, Conflict
from model_runner.backends import GENERATING_BACKENDS
from model_runner.backends.base import (
    BackendError,
    GenerationRequest,
    PromptOutcome,
    SamplingError,
    sampling_merge,
    sampling_validate,
)
from model_runner.models import GenerationJob, Generator

logger = logging.getLogger(__name__)

BUNDLED_GENERATOR_NAME = "smollm2-135m-instruct"
MAX_SAMPLES_PER_PROMPT = 16
MAX_BATCH_SIZE = 256

Status = GenerationJob.Status
FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})


def generator_get_bundled() -> Generator:
    """The bundled default generator (SmolLM2-135M-Instruct), created on first use."""
    generator, _ = Generator.objects.get_or_create(
        name=BUNDLED_GENERATOR_NAME, defaults={"backend": Generator.Backend.BUNDLED}
    )
    return generator


def generator_create(
    *,
    name: str,
    backend: str,
    model_path: str = "",
    gguf_file: str = "",
    model_name: str = "",
    api_key_env: str = "",
    chat_template: str = "",
    system_prompt: str = "",
    sampling: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> Generator:
    """Create a generator; raises ``ApplicationError`` naming the field on bad input."""
    name = name.strip()
    if not name:
        raise ApplicationError("name: must not be empty", field="name")
    if backend not in Generator.Backend.values:
        raise ApplicationError(
            f"backend: unknown backend {backend!r} (use one of {', '.join(Generator.Backend.values)})",
            field="backend",
        )
    if backend == Generator.Backend.TRANSFORMERS and not model_path:
        raise ApplicationError(
            "model_path: a transformers generator needs a local folder or GGUF file", field="model_path"
        )
    if backend == Generator.Backend.OPENAI and not model_path:
        raise ApplicationError("model_path: an openai generator needs the endpoint URL", field="model_path")
    try:
        clean_sampling = sampling_validate(sampling)
    except SamplingError as exc:
        raise ApplicationError(f"sampling.{exc}", field="sampling")
    if Generator.objects.filter(name=name).exists():
        raise Conflict(f"name: a generator named {name!r} already exists", field="name")
    return Generator.objects.create(
        name=name,
        backend=backend,
        model_path=model_path,
        gguf_file=gguf_file,
        model_name=model_name,
        api_key_env=api_key_env,
        chat_template=chat_template,
        system_prompt=system_prompt,
        sampling=clean_sampling,
        options=options or {},
    )


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
    runs the batches itself, see ``generation_job_batches``). Raises ``ApplicationError`` naming the
    field on bad input; nothing is written then.
    """
    prompt_list = list({p.pk: p for p in prompts}.values())
    generator_list = list({g.pk: g for g in generators}.values())
    if isinstance(samples_per_prompt, bool) or not isinstance(samples_per_prompt, int):
        raise ApplicationError("samples_per_prompt: must be a whole number", field="samples_per_prompt")
    if not 1 <= samples_per_prompt <= MAX_SAMPLES_PER_PROMPT:
        raise ApplicationError(
            f"samples_per_prompt: must be between 1 and {MAX_SAMPLES_PER_PROMPT}, got {samples_per_prompt}",
            field="samples_per_prompt",
        )
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ApplicationError(f"batch_size: must be between 1 and {MAX_BATCH_SIZE}", field="batch_size")
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
    from model_runner.tasks import generation_batch_task

    for generator_id, prompt_ids in batches:
        generation_batch_task.delay(job_id, generator_id, prompt_ids)


def generation_job_cancel(*, job: GenerationJob) -> GenerationJob:
    """Stop a queued or running job. Candidates already written stay; batches not yet saved write nothing.

    Raises ``Conflict`` when the job already finished.
    """
    with transaction.atomic():
        locked = GenerationJob.objects.select_for_update().get(pk=job.pk)
        if locked.status in FINISHED:
            raise Conflict(f"generation job {locked.pk} already {locked.status}; nothing to cancel")
        locked.status = Status.CANCELLED  # stopped by a person
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "finished_at"])
    return locked


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
