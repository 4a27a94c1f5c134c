"""A real Celery worker for the import-job test (run as ``python tests/comparisons/import_worker.py``).

The project's Celery app and settings; the broker transport options come from
``PREFLAB_TEST_BROKER_OPTIONS`` (a temporary filesystem-broker folder, or Redis) and the queue from
``PREFLAB_TEST_QUEUE`` (a queue of the test's own on a shared Redis).
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
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"import-test-{os.getpid()}@%h",
        ]
    )
