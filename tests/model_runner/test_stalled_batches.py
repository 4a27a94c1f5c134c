"""The stall check: a batch a worker took and never finished is sent again after
``PREFLAB_BATCH_STALL_SECONDS`` without progress, and the job completes with no duplicate; a batch
still making progress is left alone."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from comparisons.models import Candidate
from model_runner import services
from model_runner.models import GenerationBatch, GenerationJob
from model_runner.services.batch_claims import generation_batch_take
from model_runner.tasks import generation_batch_task, generation_batches_stalled_task
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(fake_backend):
    prompts = PromptFactory.create_batch(4)
    generator = GeneratorFactory.create(name="local", backend="transformers", model_path="/m", queue="gpu-a")
    return services.generation_job_create(
        prompts=prompts, generators=[generator], samples_per_prompt=2, batch_size=2, enqueue=False
    )


def _age(job: GenerationJob, seconds: float) -> None:
    GenerationBatch.objects.filter(job=job).update(progress_at=timezone.now() - timedelta(seconds=seconds))


def test_a_batch_taken_by_a_worker_that_died_is_sent_again_and_the_job_completes(
    job, fake_backend, settings, django_capture_on_commit_callbacks
):
    settings.PREFLAB_BATCH_STALL_SECONDS = 300
    (generator_id, first), (_, second) = services.generation_job_batches(job=job)
    generator = job.generators.get()
    services.generation_batch_run(job=job, generator=generator, prompt_ids=first)
    # The dead worker took the second batch and saved its first prompt's samples, then was killed.
    services.generation_batch_run(job=job, generator=generator, prompt_ids=second[:1])
    generation_batch_take(job=job, generator=generator, prompt_ids=second, worker="gpu0@dead-host")
    job.refresh_from_db()
    assert (job.status, job.done, job.total) == ("running", 6, 8)

    _age(job, 200)  # still within the threshold: left alone
    with mock.patch.object(generation_batch_task, "apply_async") as send:
        assert generation_batches_stalled_task.delay().get() == 0
    send.assert_not_called()

    _age(job, 301)
    fake_backend.calls = []
    with django_capture_on_commit_callbacks(execute=True):
        assert generation_batches_stalled_task.delay().get() == 1
    job.refresh_from_db()
    assert (job.status, job.done) == ("succeeded", 8)
    # Only what was missing was generated again, on the generator's queue; nothing twice.
    assert [[r.prompt_id for r in call] for call in fake_backend.calls] == [[second[1]]]
    per_key = Candidate.objects.values("prompt_id", "generator_id", "sample_index").annotate(n=Count("id"))
    assert per_key.count() == 8 and {row["n"] for row in per_key} == {1}
    assert not GenerationBatch.objects.exists()
    out = StringIO()
    call_command("check_integrity", stdout=out)


def test_a_batch_is_sent_again_at_most_once_per_threshold(job, settings):
    settings.PREFLAB_BATCH_STALL_SECONDS = 60
    (_, first), _ = services.generation_job_batches(job=job)
    generator = job.generators.get()
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.RUNNING)
    generation_batch_take(job=job, generator=generator, prompt_ids=first, worker="gpu0@dead-host")
    _age(job, 61)
    assert services.generation_batches_resend_stalled() == 1
    batch = GenerationBatch.objects.get()
    assert batch.resent == 1 and batch.worker == "gpu0@dead-host"
    # Sending it again counts as progress: the next minute's check leaves it alone.
    assert services.generation_batches_resend_stalled() == 0
    assert services.generation_batches_resend_stalled(now=timezone.now() + timedelta(seconds=61)) == 1
    assert GenerationBatch.objects.get().resent == 2


def test_sent_to_the_generators_queue(job, settings, django_capture_on_commit_callbacks):
    (_, first), _ = services.generation_job_batches(job=job)
    generator = job.generators.get()
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.RUNNING)
    generation_batch_take(job=job, generator=generator, prompt_ids=first)
    _age(job, settings.PREFLAB_BATCH_STALL_SECONDS + 1)
    with (
        mock.patch.object(generation_batch_task, "apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.generation_batches_resend_stalled() == 1
    send.assert_called_once_with((job.pk, generator.pk, first), queue="gpu-a")


def test_a_batch_making_progress_is_left_alone(job, fake_backend, settings):
    settings.PREFLAB_BATCH_STALL_SECONDS = 1
    (_, first), _ = services.generation_job_batches(job=job)
    generator = job.generators.get()
    seen: list[int] = []

    def while_generating() -> None:
        # The batch is taken, with fresh progress, while it generates: the check sends nothing.
        batch = GenerationBatch.objects.get()
        assert batch.prompt_ids == first
        with mock.patch.object(generation_batch_task, "apply_async") as send:
            seen.append(services.generation_batches_resend_stalled())
        send.assert_not_called()

    fake_backend.during = while_generating
    services.generation_batch_run(job=job, generator=generator, prompt_ids=first, worker="gpu0@host")
    assert seen == [0]
    # Released when the run ended.
    assert not GenerationBatch.objects.exists()


def test_nothing_missing_is_released_and_finished_jobs_are_dropped(job, fake_backend):
    batches = services.generation_job_batches(job=job)
    generator = job.generators.get()
    for _, prompt_ids in batches:
        services.generation_batch_run(job=job, generator=generator, prompt_ids=prompt_ids)
    job.refresh_from_db()
    assert job.status == "succeeded"
    generation_batch_take(job=job, generator=generator, prompt_ids=batches[0][1])
    _age(job, 10_000)
    with mock.patch.object(generation_batch_task, "apply_async") as send:
        assert services.generation_batches_resend_stalled() == 0
    send.assert_not_called()
    assert not GenerationBatch.objects.exists()


def test_beat_runs_the_check_every_minute_on_default():
    entry = settings.CELERY_BEAT_SCHEDULE["resend-stalled-generation-batches"]
    assert entry == {"task": "model_runner.tasks.generation_batches_stalled_task", "schedule": 60.0}
    router = generation_batches_stalled_task.app.amqp.router
    assert router.route({}, generation_batches_stalled_task.name)["queue"].name == "default"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_a_real_worker_killed_mid_batch_on_redis_is_finished_by_the_stall_check(tmp_path, monkeypatch):
    """With the production visibility timeout (an hour), a SIGKILLed worker's batch would sit
    unfinished; the stall check sends it again and a live worker finishes the job, nothing twice."""
    import time

    from kombu import Connection

    from labeling.celery import app
    from model_runner.services.batches import _missing_samples
    from tests.integrity import assert_no_drift
    from tests.model_runner.test_worker_crash import K, _kill, _start_worker
    from tests.real_workers import worker_broker, worker_env
    from tests.waiting import wait_for

    if not str(app.conf.broker_url).startswith("redis"):
        pytest.skip("Redis only: on the filesystem broker a starting worker re-enqueues lost batches")
    url, options, queue = worker_broker(tmp_path, queue="gpu", redis_options={"visibility_timeout": 3600})
    # Pinned to the test's own queue: the batches, and the one sent again, go there.
    generator = GeneratorFactory.create(
        name="slow-fake", backend="bundled", options={"batch_size": 1}, queue=queue
    )
    prompts = PromptFactory.create_batch(8)
    job = services.generation_job_create(
        prompts=prompts, generators=[generator], samples_per_prompt=K, batch_size=2, enqueue=False
    )
    with Connection(url, transport_options=options) as connection:
        for generator_id, prompt_ids in services.generation_job_batches(job=job):
            app.send_task(
                "model_runner.tasks.generation_batch_task",
                args=[job.pk, generator_id, prompt_ids],
                queue=queue,
                connection=connection,
            )
    env = worker_env(url, options, queue, PREFLAB_FAKE_BATCH_SECONDS="0.5")
    log = tmp_path / "worker.log"

    def done() -> int:
        return Candidate.objects.filter(job=job).count()

    first = _start_worker(env, log)
    try:
        wait_for(lambda: done() >= K, 60, "the first candidates", log)
    finally:
        _kill(first)
    stale = GenerationBatch.objects.get()  # the killed worker's batch, still marked as taken
    assert stale.worker.startswith("crash-test-")
    lost = sum(
        len(v)
        for v in _missing_samples(
            prompt_ids=stale.prompt_ids, generator=generator, samples_per_prompt=K
        ).values()
    )
    assert lost > 0

    second = _start_worker(env, log)
    try:
        # The other batches finish; the killed one's message stays unacknowledged for an hour.
        wait_for(lambda: done() == job.total - lost, 60, "the other batches", log)
        time.sleep(1.5)
        job.refresh_from_db()
        assert job.status == GenerationJob.Status.RUNNING and job.done == job.total - lost

        monkeypatch.setitem(app.conf, "task_always_eager", False)  # send to the broker, not in here
        assert services.generation_batches_resend_stalled(stall_seconds=1) == 1
        wait_for(
            lambda: GenerationJob.objects.get(pk=job.pk).status != GenerationJob.Status.RUNNING,
            60,
            "the job to finish after the stall check",
            log,
        )
    finally:
        _kill(second)

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, job.errors
    rows = Candidate.objects.filter(generator=generator)
    assert sorted(rows.values_list("prompt_id", "sample_index")) == sorted(
        (p.pk, i) for p in prompts for i in range(K)
    )
    assert not rows.values("prompt_id", "sample_index").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert not GenerationBatch.objects.exists()
    assert_no_drift()
