"""Batches whose broker messages were lost (a Redis restarted without persistence): the stall check
sends a quiet job's missing batches again when nothing of it waits in the broker or runs, and the
job completes with no duplicate. ``scripts/fault_redis_restart.sh`` does it with real workers."""

from __future__ import annotations

import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.db.models import Count
from django.utils import timezone

from comparisons.models import Candidate
from model_runner import services
from model_runner.models import GenerationJob
from model_runner.services import batch_claims
from model_runner.services.batch_claims import generation_batch_take
from model_runner.tasks import generation_batch_task, generation_batches_stalled_task
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(fake_backend):
    prompts = PromptFactory.create_batch(6)
    generator = GeneratorFactory.create(name="local", backend="transformers", model_path="/m", queue="gpu-a")
    return services.generation_job_create(
        prompts=prompts, generators=[generator], samples_per_prompt=2, batch_size=2, enqueue=False
    )


def _quiet_for(job: GenerationJob, seconds: float) -> None:
    """The job was created, and wrote its candidates, ``seconds`` ago."""
    then = timezone.now() - timedelta(seconds=seconds)
    GenerationJob.objects.filter(pk=job.pk).update(created_at=then)
    Candidate.objects.filter(job=job).update(created_at=then)


def test_a_job_whose_messages_were_lost_is_sent_again_and_completes(
    job, fake_backend, settings, django_capture_on_commit_callbacks
):
    settings.PREFLAB_BATCH_STALL_SECONDS = 60
    batches = services.generation_job_batches(job=job)
    generator = job.generators.get()
    # One batch ran before the broker lost the other two.
    services.generation_batch_run(job=job, generator=generator, prompt_ids=batches[0][1])
    _quiet_for(job, 30)
    with (
        mock.patch.object(batch_claims, "_broker_queue_size", return_value=0),
        mock.patch.object(generation_batch_task, "apply_async") as send,
    ):
        assert generation_batches_stalled_task.delay().get() == 0  # quiet for 30 s only
    send.assert_not_called()

    _quiet_for(job, 61)
    fake_backend.calls = []
    with (
        mock.patch.object(batch_claims, "_broker_queue_size", return_value=0) as size,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert generation_batches_stalled_task.delay().get() == 2
    size.assert_called_once_with("gpu-a")  # the generator's queue
    job.refresh_from_db()
    assert (job.status, job.done) == ("succeeded", 12)
    # Only the two lost batches ran again; nothing twice.
    assert sorted(r.prompt_id for call in fake_backend.calls for r in call) == sorted(
        batches[1][1] + batches[2][1]
    )
    per_key = Candidate.objects.values("prompt_id", "sample_index").annotate(n=Count("id"))
    assert per_key.count() == 12 and {row["n"] for row in per_key} == {1}


@pytest.mark.parametrize("waiting", [3, None], ids=["messages-waiting", "broker-down"])
def test_nothing_is_sent_while_the_queue_holds_messages_or_the_broker_cannot_say(job, settings, waiting):
    settings.PREFLAB_BATCH_STALL_SECONDS = 60
    _quiet_for(job, 3600)  # e.g. waiting behind another job's batches for an hour
    with (
        mock.patch.object(batch_claims, "_broker_queue_size", return_value=waiting),
        mock.patch.object(generation_batch_task, "apply_async") as send,
    ):
        assert services.generation_batches_resend_stalled() == 0
    send.assert_not_called()


def test_a_batch_a_dead_worker_holds_is_sent_by_the_stall_check_and_the_rest_after_it(
    job, fake_backend, settings, django_capture_on_commit_callbacks
):
    """A killed worker's held batch goes again through the per-batch check (which counts as
    progress); once it has run and the job is quiet again, the lost-job check sends the others,
    never the held one twice."""
    settings.PREFLAB_BATCH_STALL_SECONDS = 60
    batches = services.generation_job_batches(job=job)
    generator = job.generators.get()
    generation_batch_take(job=job, generator=generator, prompt_ids=batches[0][1], worker="gpu0@dead")
    later = timezone.now() + timedelta(seconds=120)
    with (
        mock.patch.object(batch_claims, "_broker_queue_size", return_value=0),
        mock.patch.object(generation_batch_task, "apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.generation_batches_resend_stalled(now=later) == 1
    assert [call.args[0][2] for call in send.call_args_list] == [batches[0][1]]

    services.generation_batch_run(job=job, generator=generator, prompt_ids=batches[0][1], worker="gpu1@up")
    with (
        mock.patch.object(batch_claims, "_broker_queue_size", return_value=0),
        mock.patch.object(generation_batch_task, "apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.generation_batches_resend_stalled(now=later + timedelta(seconds=121)) == 2
    assert sorted(call.args[0][2] for call in send.call_args_list) == sorted([batches[1][1], batches[2][1]])


def test_the_broker_says_an_unused_queue_is_empty():
    # Against the configured broker (Redis in CI, else the filesystem transport).
    assert batch_claims._broker_queue_size(f"never-used-{uuid.uuid4().hex[:8]}") == 0
