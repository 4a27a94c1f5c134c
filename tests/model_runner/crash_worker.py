"""A real Celery worker for the crash test (run as ``python tests/model_runner/crash_worker.py``).

The project's Celery app and settings, with two test-only changes: the generating backends answer
with ``SlowFakeBackend`` (no model load, a fixed time per model batch), and the broker transport
options come from ``PREFLAB_TEST_BROKER_OPTIONS`` (a temporary filesystem-broker folder, or a short
Redis visibility timeout so a killed worker's batch is redelivered in seconds instead of an hour).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")

import django  # noqa: E402

django.setup()

from labeling.celery import app  # noqa: E402
from model_runner import backends  # noqa: E402

for name in ("bundled", "transformers"):
    backends._LOADERS[name] = "tests.model_runner.fakes:slow_fake_backend"
app.conf.broker_transport_options = json.loads(os.environ["PREFLAB_TEST_BROKER_OPTIONS"])
app.conf.task_always_eager = False

if __name__ == "__main__":
    app.worker_main(
        [
            "worker",
            "-Q",
            os.environ["PREFLAB_TEST_QUEUE"],
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"crash-test-{os.getpid()}@%h",
        ]
    )
