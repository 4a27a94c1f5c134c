"""Batches taken by workers, and the stall check that sends a dead worker's batch again.

The only module that writes ``GenerationBatch``. A worker takes a batch when it starts it
(``generation_batch_take``), moves its ``progress_at`` with each model batch it saves
(``generation_batch_progress``) and releases it when the run ends, however it ends
(``generation_batch_release``). A worker killed mid-batch releases nothing, so its row stays with
an old ``progress_at``. Redis gives such a batch back only after its visibility timeout (an hour),
and the filesystem broker only when a ``gpu`` worker starts: ``generation_batches_resend_stalled``,
run by beat every minute on every broker, sends it again once it has made no progress for
``PREFLAB_BATCH_STALL_SECONDS``. The same check sends again the batches of a job whose queued
messages the broker lost (``generation_jobs_resend_lost``). Sending a batch twice is safe: a run generates only the samples
that are missing, and the unique (prompt, generator, sample_index) key on candidates means a
sample is never written twice, even by two workers at once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

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
    return sent + generation_jobs_resend_lost(stall_seconds=stall, now=now)


def _broker_queue_size(name: str) -> int | None:
    """Messages waiting in the broker's queue ``name`` (0 when it does not exist); None when the
    broker cannot be asked (then nothing is sent again: a missing answer is not an empty queue)."""
    from celery import current_app
    from kombu.exceptions import ChannelError

    try:
        with current_app.connection_for_write() as conn:
            channel: Any = conn.default_channel  # kombu's StdChannel stub lacks queue_declare
            try:
                return int(channel.queue_declare(queue=name, passive=True).message_count)
            except ChannelError:  # kombu's virtual transports (Redis, filesystem): no key, no message
                return 0
            except Exception as exc:  # RabbitMQ's 404 (amqp.exceptions.NotFound) for a queue never declared
                if type(exc).__name__ == "NotFound":
                    return 0
                raise
    except Exception:  # the broker is down: ask again next time
        logger.warning("stall check: cannot read the size of broker queue %r", name, exc_info=True)
        return None


def generation_jobs_resend_lost(*, stall_seconds: float, now: datetime) -> int:
    """Send again the missing batches of unfinished jobs whose messages the broker lost; return how many.

    A broker restarted without persistence (Redis with no AOF/RDB, a crashed host) drops every
    queued message, and no worker holds a row for those batches, so the per-batch stall check
    cannot see them. A job counts as lost when, for ``stall_seconds``, it was created, wrote no
    candidate and none of its batches made progress, and every queue its generators use is empty
    in the broker: nothing is waiting and nothing is running. Its batches that still lack candidates
    and that no worker holds are enqueued again (after commit). The queues then hold them, so a job
    is sent again at most once while it waits; a batch that runs twice writes nothing twice.
    """
    from comparisons.models import Candidate
    from model_runner.services.jobs import _enqueue, generation_job_pending_batches

    cutoff = now - timedelta(seconds=stall_seconds)
    quiet = (
        GenerationJob.objects.filter(status__in=[Status.QUEUED, Status.RUNNING], created_at__lt=cutoff)
        .exclude(pk__in=GenerationBatch.objects.filter(progress_at__gte=cutoff).values("job_id"))
        .order_by("pk")
    )
    sizes: dict[str, int | None] = {}
    sent = 0
    for job in quiet:
        generators = {g.pk: g.queue or "gpu" for g in job.generators.all()}
        for name in set(generators.values()):
            if name not in sizes:
                sizes[name] = _broker_queue_size(name)
        if any(sizes[name] != 0 for name in set(generators.values())):
            continue  # something is waiting (or the broker cannot say): not lost
        if Candidate.objects.filter(job=job, created_at__gte=cutoff).exists():
            continue  # it wrote something lately: a worker is on it
        taken = {
            (b.generator_id, tuple(b.prompt_ids)) for b in GenerationBatch.objects.filter(job=job).order_by()
        }
        batches = [b for b in generation_job_pending_batches(job=job) if (b[0], tuple(b[1])) not in taken]
        if not batches:
            continue
        logger.warning(
            "generation job %s: no batch waiting in the broker or running for %d s, %d batch(es) "
            "still missing candidates; sending them again (broker messages lost?)",
            job.pk,
            stall_seconds,
            len(batches),
        )
        transaction.on_commit(lambda job_id=job.pk, b=batches: _enqueue(job_id, b))  # type: ignore[misc]
        for name in set(generators.values()):
            sizes[name] = None  # now holds this job's batches
        sent += len(batches)
    return sent
