"""A big import through the API and a real Celery worker: 202, then the worker imports the saved
file and the job says so. The broker is the configured one (Redis in CI's PostgreSQL pass, a
temporary filesystem broker otherwise); the worker reads the test database, so this test commits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from comparisons import tasks
from comparisons.models import ImportJob, Prompt
from labeling.celery import app
from tests.real_workers import worker_broker, worker_env
from tests.waiting import wait_for

from .helpers import jsonl, user

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

WORKER = Path(__file__).with_name("import_worker.py")


def _broker(tmp_path: Path) -> tuple[str, dict[str, Any], str]:
    """(broker url, transport options, queue) for this test."""
    return worker_broker(tmp_path, queue="default", redis_options={"visibility_timeout": 30})


def test_a_big_import_is_run_by_a_worker(admin_api, settings, tmp_path, monkeypatch):
    settings.PREFLAB_IMPORT_ASYNC_BYTES = 100
    url, options, queue = _broker(tmp_path)

    def enqueue(import_job_id: int) -> None:  # to the real worker's queue, not eagerly here
        with Connection(url, transport_options=options) as connection:
            app.send_task(
                "comparisons.tasks.import_job_task", args=[import_job_id], queue=queue, connection=connection
            )

    monkeypatch.setattr(tasks.import_job_task, "delay", enqueue)
    rows = [{"id": f"w{i}", "messages": user(f"Worker question {i}?")} for i in range(50)]
    response = admin_api.post(
        URL := "/api/v1/prompts/import/", data=jsonl(*rows), content_type="application/jsonl"
    )
    assert response.status_code == 202, response.json()
    assert URL and not Prompt.objects.exists()

    env = worker_env(url, options, queue, PREFLAB_EXPORT_ROOT=str(settings.PREFLAB_EXPORT_ROOT))
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, str(WORKER)],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: ImportJob.objects.get().finished,
            90,
            "the worker to finish the import job",
            log,
        )
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)

    job = admin_api.get(response.json()["url"]).json()
    assert job["status"] == "succeeded", job
    assert job["result"] == {"prompts": {"created": 50, "existing": 0}}
    assert Prompt.objects.count() == 50
