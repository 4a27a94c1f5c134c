"""The ``openai`` backend against a chat-completions server started in the test (no network)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from comparisons.models import Candidate
from model_runner import services
from model_runner.models import GenerationJob, Generator
from tests.factories import GeneratorFactory, PromptFactory
from tests.model_runner.openai_server import completion

pytestmark = pytest.mark.django_db


def _generator(url: str, **options: Any) -> Generator:
    return GeneratorFactory.create(
        name="endpoint",
        backend=Generator.Backend.OPENAI,
        model_path=url,
        model_name="my-model",
        system_prompt="Be brief.",
        options={"backoff": 0.01, "backoff_max": 0.05, **options},
    )


def _run(generator: Generator, prompts: list, k: int = 2, sampling: dict | None = None) -> GenerationJob:
    job = services.generation_job_create(
        prompts=prompts, generators=[generator], samples_per_prompt=k, sampling=sampling or {}, enqueue=False
    )
    services.generation_batch_run(job=job, generator=generator, prompt_ids=[p.pk for p in prompts])
    job.refresh_from_db()
    return job


def test_k_samples_per_prompt_with_metadata_and_the_key_from_the_environment(chat_server, monkeypatch):
    monkeypatch.setenv("PREFLAB_KEY_TEST", "sk-secret-123")

    def script(n: int, body: dict[str, Any]):
        time.sleep(0.05)  # long enough for requests to overlap
        last = body["messages"][-1]["content"]
        finish = "length" if "long" in last else "stop"
        return 200, completion(f"answer to {last} (seed {body['seed']})", finish=finish), {}

    server = chat_server(script)
    generator = _generator(server.url, concurrency=3)
    generator.api_key_env = "PREFLAB_KEY_TEST"
    generator.save()
    prompts = [
        PromptFactory.create(messages=[{"role": "user", "content": f"question {i}"}]) for i in range(3)
    ] + [PromptFactory.create(messages=[{"role": "user", "content": "a long one"}])]

    job = _run(generator, prompts, k=2, sampling={"seed": 7, "max_new_tokens": 20, "stop": ["\n\n"]})

    assert job.status == GenerationJob.Status.SUCCEEDED, job.errors
    assert len(server.requests) == 8
    assert 1 < server.max_in_flight <= 3  # concurrent, but never more than the option allows
    first = server.requests[0]
    assert first["model"] == "my-model"
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (first["max_tokens"], first["temperature"], first["stop"]) == (20, 0.7, ["\n\n"])
    assert "top_k" not in first  # api.openai.com rejects it; only sent with options.extra_sampling
    assert {h["Authorization"] for h in server.headers} == {"Bearer sk-secret-123"}
    assert "sk-secret" not in json.dumps(
        Generator.objects.filter(pk=generator.pk).values().get(), default=str
    )

    candidates = list(Candidate.objects.filter(job=job).order_by("prompt_id", "sample_index"))
    assert [(c.prompt_id, c.sample_index) for c in candidates] == [(p.pk, i) for p in prompts for i in (0, 1)]
    c = candidates[0]
    assert c.text == f"answer to question 0 (seed {c.seed})"
    assert (c.prompt_tokens, c.completion_tokens, c.finish_reason) == (11, 5, "stop")
    assert c.model_revision == "served-model@fp_1"
    assert c.sampling["seed"] == 7 and c.sampling["stop"] == ["\n\n"]
    # The chunk's wall time (8 requests of 50 ms, 3 at a time: >= 150 ms) shared out over 8 samples.
    assert c.latency_ms is not None and 150 / 8 <= c.latency_ms < 1000
    assert job.generation_seconds == pytest.approx(sum(x.latency_ms for x in candidates) / 1000)
    assert candidates[0].seed != candidates[1].seed  # each sample its own seed
    assert {c.finish_reason for c in candidates if c.prompt_id == prompts[-1].pk} == {"length"}
    assert job.completion_tokens == 8 * 5


def test_a_429_then_success_is_retried_after_backoff(chat_server):
    def script(n: int, body: dict[str, Any]):
        if n == 0:
            return 429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "0"}
        if n == 1:
            return 503, {"error": {"message": "overloaded"}}, {}
        return 200, completion("fine"), {}

    server = chat_server(script)
    generator = _generator(server.url, concurrency=1, max_retries=3)
    prompt = PromptFactory.create()

    job = _run(generator, [prompt], k=1)

    assert job.status == GenerationJob.Status.SUCCEEDED, job.errors
    assert len(server.requests) == 3
    assert Candidate.objects.get(job=job).text == "fine"


def test_a_timeout_fails_the_job_readably_after_the_retries(chat_server):
    def script(n: int, body: dict[str, Any]):
        time.sleep(1.0)
        return 200, completion("too late"), {}

    server = chat_server(script)
    generator = _generator(server.url, timeout=0.2, max_retries=1)
    prompt = PromptFactory.create()

    started = time.monotonic()
    job = _run(generator, [prompt], k=1)

    assert time.monotonic() - started < 5
    assert job.status == GenerationJob.Status.FAILED
    (error,) = job.errors
    assert error["generator"] == "endpoint"
    assert error["error"] == (
        f"generator 'endpoint': the endpoint {server.url}/chat/completions did not answer within 0.2 s "
        "(gave up after 2 attempts)"
    )
    assert len(server.requests) == 2
    assert not Candidate.objects.exists()


def test_an_unreachable_endpoint_fails_the_job_readably():
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    generator = _generator(f"http://127.0.0.1:{port}/v1", max_retries=1)

    job = _run(generator, [PromptFactory.create()], k=1)

    assert job.status == GenerationJob.Status.FAILED
    message = job.errors[0]["error"]
    assert message.startswith(
        f"generator 'endpoint': the endpoint http://127.0.0.1:{port}/v1/chat/completions"
    )
    assert "cannot be reached" in message and "Connection refused" in message
    assert "Traceback" not in message


def test_a_prompt_the_endpoint_refuses_is_that_prompts_error(chat_server):
    def script(n: int, body: dict[str, Any]):
        if "huge" in body["messages"][-1]["content"]:
            message = (
                "This model's maximum context length is 4096 tokens. However, you requested 9000 tokens."
            )
            return 400, {"error": {"message": message, "type": "invalid_request_error"}}, {}
        return 200, completion("ok"), {}

    server = chat_server(script)
    generator = _generator(server.url)
    fine = PromptFactory.create(messages=[{"role": "user", "content": "small"}])
    huge = PromptFactory.create(messages=[{"role": "user", "content": "huge"}])

    job = _run(generator, [fine, huge], k=2)

    assert job.status == GenerationJob.Status.FAILED
    (error,) = job.errors
    assert error["prompt_id"] == huge.pk
    assert error["error"].startswith("the endpoint refused this prompt (400): Bad Request")
    assert Candidate.objects.filter(prompt=fine).count() == 2


def test_a_wrong_url_and_a_missing_key_are_named(chat_server, monkeypatch):
    server = chat_server(lambda n, body: (200, completion("x"), {}))
    wrong = _generator(server.url.removesuffix("/v1") + "/api")
    job = _run(wrong, [PromptFactory.create()], k=1)
    assert "answered 404" in job.errors[0]["error"] and "check model_path" in job.errors[0]["error"]

    monkeypatch.delenv("PREFLAB_KEY_MISSING", raising=False)
    keyless = GeneratorFactory.create(
        name="keyless",
        backend=Generator.Backend.OPENAI,
        model_path=server.url,
        model_name="m",
        api_key_env="PREFLAB_KEY_MISSING",
    )
    job = _run(keyless, [PromptFactory.create()], k=1)
    assert job.errors[0]["error"] == (
        "generator 'keyless': the environment variable 'PREFLAB_KEY_MISSING' (api_key_env) is not set in the worker"
    )


def test_retry_after_a_failed_batch_redoes_only_what_is_missing(
    chat_server, django_capture_on_commit_callbacks
):
    state = {"down": True}

    def script(n: int, body: dict[str, Any]):
        if state["down"] and body["messages"][-1]["content"] == "flaky":
            return 502, {"error": {"message": "bad gateway"}}, {}
        return 200, completion("answered"), {}

    server = chat_server(script)
    generator = _generator(server.url, max_retries=0)
    good = PromptFactory.create(messages=[{"role": "user", "content": "good"}])
    flaky = PromptFactory.create(messages=[{"role": "user", "content": "flaky"}])
    job = services.generation_job_create(
        prompts=[good, flaky], generators=[generator], samples_per_prompt=2, batch_size=1, enqueue=False
    )
    services.generation_batch_run(job=job, generator=generator, prompt_ids=[good.pk])
    services.generation_batch_run(job=job, generator=generator, prompt_ids=[flaky.pk])
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert "answered 502: Bad Gateway (gave up after 1 attempt)" in job.errors[0]["error"]
    kept = set(Candidate.objects.filter(job=job).values_list("pk", flat=True))
    assert len(kept) == 2 and len(server.requests) == 4
    state["down"] = False

    with django_capture_on_commit_callbacks(execute=True):
        retried = services.generation_job_retry(job=job)

    assert retried.status == GenerationJob.Status.QUEUED
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, job.errors
    assert job.errors == [] and job.done == 4
    assert len(server.requests) == 4 + 2  # only the failed batch's prompt was asked again
    assert kept < set(Candidate.objects.filter(job=job).values_list("pk", flat=True))
