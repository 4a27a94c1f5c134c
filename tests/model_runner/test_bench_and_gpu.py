"""``manage.py bench_generation`` (tiny settings) and the CUDA paths (skipped without a GPU)."""

from __future__ import annotations

import json
import os
from io import StringIO

import pytest
from django.core.management import call_command

from comparisons.models import Candidate
from model_runner import services
from model_runner.models import GenerationJob, Generator
from tests.factories import GeneratorFactory, PromptFactory


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# scripts/gpu_check.sh sets PREFLAB_REQUIRE_CUDA: there a missing GPU fails these tests instead.
gpu = pytest.mark.skipif(not _cuda() and os.environ.get("PREFLAB_REQUIRE_CUDA") != "1", reason="needs CUDA")


@pytest.mark.model
def test_bench_generation_prints_both_rates_and_their_ratio():
    out = StringIO()
    call_command(
        "bench_generation",
        "--prompts", "3", "--samples", "2", "--max-new-tokens", "3", "--naive-prompts", "1",
        "--skip-first-load",
        stdout=out,
    )  # fmt: skip
    result = json.loads(out.getvalue())
    assert result["settings"]["prompts"] == 3 and result["settings"]["samples"] == 2
    assert result["naive"]["sequences"] == 2
    assert result["runner"]["sequences"] == 6 and result["runner"]["model_batches"] >= 1
    shapes = result["runner"]["batch_shapes"]
    assert sum(s["sequences"] for s in shapes) == 6 and all(s["prompt_width"] > 0 for s in shapes)
    assert result["naive"]["tokens_per_second"] > 0 and result["runner"]["tokens_per_second"] > 0
    assert result["speedup"] == pytest.approx(
        result["runner"]["tokens_per_second"] / result["naive"]["tokens_per_second"], rel=0.05
    )
    assert result["load"]["cached_seconds"] >= 0
    assert result["model"]["attention"] == "sdpa"
    assert result["machine"]["torch_threads"] >= 1


@gpu
@pytest.mark.gpu
@pytest.mark.model
@pytest.mark.django_db
def test_on_cuda_the_runner_uses_bf16_sdpa_and_a_static_cache(monkeypatch):
    from model_runner.backends import transformers_backend as tb

    generator = services.generator_get_bundled()
    backend = tb.backend_for_generator(generator)
    assert backend.loaded.device.startswith("cuda")
    assert backend.loaded.model.dtype == tb.torch.bfloat16
    assert backend.loaded.model.config._attn_implementation == "sdpa"
    model = backend.loaded.model  # the worker's copy: the task below generates with it
    calls: list[dict] = []
    real_generate = model.generate

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    prompts = PromptFactory.create_batch(2)
    job = services.generation_job_create(
        prompts=prompts,
        generators=[generator],
        samples_per_prompt=2,
        sampling={"max_new_tokens": 8},
        enqueue=False,
    )
    services.generation_batch_run(job=job, generator=generator, prompt_ids=[p.pk for p in prompts])
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, job.errors
    assert Candidate.objects.filter(job=job).count() == 4
    assert calls and all(kw.get("cache_implementation") == "static" for kw in calls)


@gpu
@pytest.mark.gpu
@pytest.mark.model
@pytest.mark.django_db
def test_on_cuda_the_batch_size_comes_from_free_memory_and_an_oversized_batch_still_finishes():
    from model_runner.backends import transformers_backend as tb
    from model_runner.backends.base import GenerationRequest, sampling_merge

    generator = GeneratorFactory.create(
        name="smol-gpu-eager", backend=Generator.Backend.BUNDLED, options={"compile": False}
    )
    backend = tb.backend_for_generator(generator)
    assert backend._gpu_batch_tokens() > 64 * 1024  # a 135M model leaves room for many sequences
    saved = backend.loaded.batch_tokens
    try:
        # Claim that any batch fits: 64 prompts of ~7,000 tokens x 16 samples need ~165 GB of KV cache,
        # more than an H100 or H200 has, so the first batch meets a real CUDA out-of-memory error. It
        # must be caught, the batch halved and retried until every prompt is answered.
        backend.loaded.batch_tokens = 1 << 40
        text = "word " * 7000
        requests = [
            GenerationRequest(prompt_id=i, messages=[{"role": "user", "content": text}], num_samples=16)
            for i in range(64)
        ]
        prompt_tokens = len(backend._prompt_ids(requests[0].messages))
        assert prompt_tokens < backend.context_length
        model = backend.loaded.model
        need = 64 * 16 * (prompt_tokens + 1) * tb.kv_bytes_per_token(model.config, model.dtype)
        _free, total = tb.torch.cuda.mem_get_info(tb.torch.device(backend.loaded.device))
        sampling = sampling_merge({"max_new_tokens": 1})
        outcomes = [
            o for chunk in backend.generate(requests, sampling=sampling, batch_size=64) for o in chunk
        ]
        assert len(outcomes) == 64 and all(o.error is None and len(o.samples) == 16 for o in outcomes)
        if need > total:
            assert backend.oom_halvings >= 1
            assert backend.loaded.batch_tokens < 64 * 16 * (
                prompt_tokens + 1
            )  # the budget that fitted is kept
    finally:
        backend.loaded.batch_tokens = saved
