"""A real Celery worker for the conversation crash test (``python tests/labeling/session_worker.py``).

The project's Celery app and settings, served as production serves conversation turns (one
process, ``--pool solo``), with three test-only changes: the generating backends answer with a
slow fake (no model load, ``PREFLAB_FAKE_BATCH_SECONDS`` per model batch, and texts that name the
generator, so two generators' alternatives differ); the broker transport options come from
``PREFLAB_TEST_BROKER_OPTIONS``; and turns are routed to ``PREFLAB_TEST_QUEUE`` (a queue of the
test's own on a shared Redis).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")

import django  # noqa: E402

django.setup()

from labeling.celery import app  # noqa: E402
from model_runner import backends  # noqa: E402
from model_runner.backends.base import GenerationRequest, PromptOutcome  # noqa: E402
from tests.model_runner.fakes import SlowFakeBackend  # noqa: E402


class NamedSlowFakeBackend(SlowFakeBackend):
    """``SlowFakeBackend`` whose texts start with the generator's name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def generate(
        self, requests: Sequence[GenerationRequest], *, sampling: Mapping[str, Any], batch_size: int
    ) -> Iterator[list[PromptOutcome]]:
        for outcomes in super().generate(requests, sampling=sampling, batch_size=batch_size):
            yield [
                dataclasses.replace(
                    o, samples=[dataclasses.replace(s, text=f"{self.name} {s.text}") for s in o.samples]
                )
                for o in outcomes
            ]


def named_slow_fake(generator: Any) -> NamedSlowFakeBackend:
    return NamedSlowFakeBackend(generator.name)


for name in ("bundled", "transformers"):
    backends._LOADERS[name] = "__main__:named_slow_fake"
app.conf.broker_transport_options = json.loads(os.environ["PREFLAB_TEST_BROKER_OPTIONS"])
app.conf.task_always_eager = False
app.conf.task_routes = {
    "labeling.tasks.session_turn_generate_task": {"queue": os.environ["PREFLAB_TEST_QUEUE"]}
}

if __name__ == "__main__":
    app.worker_main(
        [
            "worker",
            "-Q",
            os.environ["PREFLAB_TEST_QUEUE"],
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"session-test-{os.getpid()}@%h",
        ]
    )
