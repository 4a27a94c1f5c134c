"""Batches taken by workers, and the stall check that sends a dead worker's batch again.

The only module that writes ``GenerationBatch``. A worker takes a batch when it starts it
(``generation_batch_take``), moves its ``progress_at`` with each model batch it saves
(``generation_batch_progress``) and releases it when the run ends, however it ends
(``generation_batch_release``). A worker killed mid-batch releases nothing, so its row stays with
an old ``progress_at``. Redis gives such a batch back only after its visibility timeout (an hour),
and the filesystem broker only when a ``gpu`` worker starts: ``generation_batches_resend_stalled``,
run by beat every minute on every broker, sends it again once it has made no progress for
``PREFLAB_BATCH_STALL_SECONDS``. Sending a batch twice is safe: a run generates only the samples
that are missing, and the unique (prompt, generator, sample_index) key on candidates means a
sample is never written twice, even by two workers at once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from model_runner.models import GenerationBatch, GenerationJob, Generator
from model_runner.services.job_status import FINISHED, Status, generation_job_settle

logger = logging.getLogger(__name__)


def generation_batch_key(*, generator_id: int, prompt_ids: Sequence[int]) -> str:
    """A batch's identity within its job: sha256 of the generator id and the prompt ids, in order."""
    return hashlib.sha256(f"{generator_id}:{','.join(map(str, prompt_ids))}".encode()).hexdigest()


def generation_batch_take(
    *, job: GenerationJob, generator: Generator, prompt_ids: Sequence[int], worker: str = ""
) -> str:
    """Record that ``worker`` started this batch now; return its key. Taking a batch another worker
    holds (a batch sent again) moves the row to this worker: the last one to start it is watched."""
    key = generation_batch_key(generator_id=generator.pk, prompt_ids=prompt_ids)
    now = timezone.now()
    values = {"worker": worker[:255], "taken_at": now, "progress_at": now}
    for _ in range(2):  # a concurrent first take of the same batch wins the insert; update then
        if GenerationBatch.objects.filter(job=job, key=key).update(**values):
            return key
        try:
            with transaction.atomic():
                GenerationBatch.objects.create(
                    job=job, generator=generator, prompt_ids=list(prompt_ids), key=key, **values
                )
            return key
        except IntegrityError:
            continue
    return key


def generation_batch_progress(*, job: GenerationJob, key: str) -> None:
    """The batch saved something: it is alive."""
    GenerationBatch.objects.filter(job=job, key=key).update(progress_at=timezone.now())


def generation_batch_release(*, job: GenerationJob, key: str) -> None:
    """The run ended (finished, failed, or found the job cancelled)."""
    GenerationBatch.objects.filter(job=job, key=key).delete()


def generation_batches_resend_stalled(
    *, stall_seconds: float | None = None, now: datetime | None = None
) -> int:
    """Send again every taken batch of a queued or running job that has made no progress for
    ``stall_seconds`` (default ``PREFLAB_BATCH_STALL_SECONDS``); return how many were sent.

    A stalled batch that has nothing missing any more is released and its job settled instead. A
    batch sent again counts as progress, so it is sent at most once per ``stall_seconds``. Rows of
    finished jobs are dropped. Rows are locked (``SKIP LOCKED`` on PostgreSQL), so two checks at
    once never send the same batch twice.
    """
    from model_runner.services.batches import _errored, _missing_samples
    from model_runner.services.jobs import _enqueue

    stall = settings.PREFLAB_BATCH_STALL_SECONDS if stall_seconds is None else stall_seconds
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=stall)
    GenerationBatch.objects.filter(job__status__in=FINISHED).delete()
    sent = 0
    with transaction.atomic():
        stalled = list(
            GenerationBatch.objects.select_for_update(skip_locked=True)
            .filter(progress_at__lt=cutoff, job__status__in=[Status.QUEUED, Status.RUNNING])
            .order_by("pk")
        )
        jobs = {j.pk: j for j in GenerationJob.objects.filter(pk__in={b.job_id for b in stalled})}
        generators = {g.pk: g for g in Generator.objects.filter(pk__in={b.generator_id for b in stalled})}
        resend: list[tuple[int, tuple[int, list[int]]]] = []
        for batch in stalled:
            job, generator = jobs[batch.job_id], generators[batch.generator_id]
            skip = _errored(job, generator)
            missing = _missing_samples(
                prompt_ids=[p for p in batch.prompt_ids if p not in skip],
                generator=generator,
                samples_per_prompt=job.samples_per_prompt,
            )
            if not missing:
                batch.delete()
                generation_job_settle(job=job)
                continue
            logger.warning(
                "generation job %s: batch %s (%d prompt(s), generator %r) taken by %s at %s made no "
                "progress since %s; sending it again",
                job.pk,
                batch.key[:12],
                len(batch.prompt_ids),
                generator.name,
                batch.worker or "a worker",
                batch.taken_at.isoformat(),
                batch.progress_at.isoformat(),
            )
            GenerationBatch.objects.filter(pk=batch.pk).update(progress_at=now, resent=batch.resent + 1)
            resend.append((job.pk, (generator.pk, list(batch.prompt_ids))))
            sent += 1
        for job_id, one in resend:
            transaction.on_commit(lambda job_id=job_id, one=one: _enqueue(job_id, [one]))  # type: ignore[misc]
    return sent
