"""Crash safety with a real Celery worker process: SIGKILL mid-batch, a new worker finishes the job.

The broker is the configured one: Redis when ``CELERY_BROKER_URL`` names it (the unacked message
comes back after the visibility timeout, here shortened to seconds), else kombu's filesystem
transport in a temporary folder (which loses a taken message: the new worker's start re-enqueues the
unfinished batches). The worker reads the test database, so this test commits for real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Count
from kombu import Connection

from comparisons.models import Candidate
from labeling.celery import app
from model_runner import services
from model_runner.models import GenerationJob, Generator
from tests.factories import GeneratorFactory, PromptFactory
from tests.integrity import assert_no_drift
from tests.real_workers import worker_broker, worker_env
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

WORKER = Path(__file__).with_name("crash_worker.py")
K = 2
BATCH_SECONDS = 0.5


def _broker(tmp_path: Path) -> tuple[str, dict[str, Any], str]:
    """(broker url, transport options, queue) for this test."""
    return worker_broker(
        tmp_path,
        queue="gpu",
        redis_options={"visibility_timeout": 4, "unacked_restore_interval": 1, "unacked_restore_throttle": 1},
    )


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(WORKER)],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL takes the pool children too
        )


def _kill(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def test_a_worker_killed_mid_batch_leaves_no_duplicates_and_no_gaps(tmp_path):
    url, options, queue = _broker(tmp_path)
    generator = GeneratorFactory.create(
        name="slow-fake", backend=Generator.Backend.BUNDLED, options={"batch_size": 1}
    )
    prompts = PromptFactory.create_batch(8)
    # 4 tasks of 2 prompts; each task saves after each prompt (model batches of 1), 0.5 s apiece.
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

    env = worker_env(url, options, queue, PREFLAB_FAKE_BATCH_SECONDS=str(BATCH_SECONDS))
    log = tmp_path / "worker.log"

    def done() -> int:
        return Candidate.objects.filter(job=job).count()

    first = _start_worker(env, log)
    try:
        # Kill right after the first model batch is saved: its task still has a prompt to go.
        wait_for(lambda: done() >= K, 60, "the first candidates", log)
        _kill(first)
    finally:
        _kill(first)
    killed_at = done()
    assert 0 < killed_at < job.total
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.RUNNING

    second = _start_worker(env, log)
    try:
        wait_for(
            lambda: GenerationJob.objects.get(pk=job.pk).status != GenerationJob.Status.RUNNING,
            60,
            "the job to finish in the second worker",
            log,
        )
    finally:
        _kill(second)

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, job.errors
    rows = Candidate.objects.filter(generator=generator)
    # No gaps: every (prompt, sample) exists ...
    assert sorted(rows.values_list("prompt_id", "sample_index")) == sorted(
        (p.pk, i) for p in prompts for i in range(K)
    )
    # ... and no duplicates: one row each (the unique key), nothing beyond K.
    assert rows.count() == len(prompts) * K == job.done == job.total
    assert not rows.values("prompt_id", "sample_index").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert_no_drift()
