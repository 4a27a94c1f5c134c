"""A stand-in backend for tests that do not need the real model (registered through ``_LOADERS``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from model_runner.backends.base import GenerationRequest, PromptOutcome, SampleResult, batch_seed


class FakeBackend:
    """Answers ``"<prompt id>: sample <n>"``; prompts whose last message contains TOO LONG get an error.

    ``calls`` records every request list it was given; ``during`` (if set) runs inside ``generate``
    before anything is yielded, to simulate what happens meanwhile (a cancel, a concurrent worker).
    """

    revision = "fake-rev-1"
    calls: list[list[GenerationRequest]] = []
    during: Callable[[], None] | None = None

    def generate(
        self, requests: Sequence[GenerationRequest], *, sampling: Mapping[str, Any], batch_size: int
    ) -> Iterator[list[PromptOutcome]]:
        FakeBackend.calls.append(list(requests))
        if FakeBackend.during is not None:
            FakeBackend.during()
        outcomes = []
        for request in requests:
            if "TOO LONG" in request.messages[-1]["content"]:
                outcomes.append(PromptOutcome(request.prompt_id, error="prompt is too long for the fake"))
                continue
            seed = batch_seed(sampling.get("seed"), [request.prompt_id], request.num_samples)
            samples = [
                SampleResult(
                    text=f"{request.prompt_id}: sample {n}",
                    prompt_tokens=7,
                    completion_tokens=3,
                    finish_reason="stop",
                    seed=seed,
                    latency_ms=10,
                )
                for n in range(request.num_samples)
            ]
            outcomes.append(PromptOutcome(request.prompt_id, samples=samples))
        yield outcomes


def fake_backend(generator: Any) -> FakeBackend:
    return FakeBackend()


class SlowFakeBackend(FakeBackend):
    """``FakeBackend`` that answers ``batch_size`` prompts per model batch and sleeps
    ``PREFLAB_FAKE_BATCH_SECONDS`` (default 0.5) for each: slow enough to kill a worker mid-batch."""

    def generate(
        self, requests: Sequence[GenerationRequest], *, sampling: Mapping[str, Any], batch_size: int
    ) -> Iterator[list[PromptOutcome]]:
        import os
        import time

        delay = float(os.environ.get("PREFLAB_FAKE_BATCH_SECONDS", "0.5"))
        for start in range(0, len(requests), max(1, batch_size)):
            time.sleep(delay)
            yield from super().generate(
                requests[start : start + batch_size], sampling=sampling, batch_size=batch_size
            )


def slow_fake_backend(generator: Any) -> SlowFakeBackend:
    return SlowFakeBackend()
