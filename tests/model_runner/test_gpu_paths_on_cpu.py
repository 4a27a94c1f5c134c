"""The code a GPU runs, exercised on the CPU: the static KV cache, bf16 weights, batch sizing from
free GPU memory and the bandwidth figures. Only torch.compile and CUDA itself are left to the
``gpu`` tests (``scripts/gpu_check.sh``)."""

from __future__ import annotations

import dataclasses

import pytest

from model_runner.backends.base import GenerationRequest, sampling_merge
from model_runner.management.commands.bench_generation import bandwidth_report
from model_runner.models import Generator
from tests.factories import GeneratorFactory


@pytest.fixture
def tb():
    from model_runner.backends import transformers_backend

    return transformers_backend


def _requests(n: int, k: int) -> list[GenerationRequest]:
    # Different lengths, so the batch is left-padded.
    return [
        GenerationRequest(
            prompt_id=i, messages=[{"role": "user", "content": "Hi! " * (1 + 4 * i)}], num_samples=k
        )
        for i in range(n)
    ]


def _texts(backend, requests, sampling) -> list[list[str]]:
    return [
        [s.text for s in o.samples]
        for chunk in backend.generate(requests, sampling=sampling, batch_size=8)
        for o in chunk
    ]


@pytest.mark.model
@pytest.mark.django_db
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_the_static_cache_path_gives_the_same_samples_as_the_dynamic_one(tb, monkeypatch, temperature):
    generator = GeneratorFactory.create(name="smol-static", backend=Generator.Backend.BUNDLED)
    backend = tb.backend_for_generator(generator)
    requests = _requests(3, 3)
    sampling = sampling_merge({"max_new_tokens": 6, "seed": 5, "temperature": temperature})
    dynamic = _texts(backend, requests, sampling)

    seen: list[dict] = []
    model = backend.loaded.model
    real_generate = model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    monkeypatch.setattr(tb.TransformersBackend, "_static_cache", lambda self: True)
    static = _texts(backend, requests, sampling)

    assert seen and all(kw.get("cache_implementation") == "static" for kw in seen)
    assert all("cache" not in kw for kw in seen)  # no shared prefill: it would replace the static cache
    assert static == dynamic
    assert all(len(samples) == 3 for samples in static)


@pytest.mark.model
@pytest.mark.django_db
def test_bf16_weights_generate(tb):
    generator = GeneratorFactory.create(
        name="smol-bf16", backend=Generator.Backend.BUNDLED, options={"dtype": "bfloat16", "device": "cpu"}
    )
    backend = tb.backend_for_generator(generator)
    assert backend.loaded.model.dtype == tb.torch.bfloat16
    outcomes = [
        o
        for chunk in backend.generate(
            _requests(2, 2), sampling=sampling_merge({"max_new_tokens": 4}), batch_size=4
        )
        for o in chunk
    ]
    assert [len(o.samples) for o in outcomes] == [2, 2]
    assert all(s.completion_tokens >= 1 for o in outcomes for s in o.samples)


@pytest.mark.model
@pytest.mark.django_db
def test_on_a_gpu_the_batch_holds_what_free_memory_allows(tb, monkeypatch):
    generator = GeneratorFactory.create(name="smol-sizing", backend=Generator.Backend.BUNDLED)
    real = tb.backend_for_generator(generator)
    # The same model, as if it sat on a GPU with 1 GiB free (nothing is run on it here).
    loaded = dataclasses.replace(real.loaded, device="cuda:0", batch_tokens=None)
    backend = tb.TransformersBackend(loaded, name="sizing", chat_template=None, system_prompt=None)
    free = 1 << 30
    monkeypatch.setattr(tb.torch.cuda, "mem_get_info", lambda device=None: (free, 80 << 30))

    config = loaded.model.config
    per_token = tb.kv_bytes_per_token(config, loaded.model.dtype)
    # SmolLM2-135M: 30 layers x 3 KV heads x 64 dims x keys and values, in fp32.
    assert per_token == 2 * 30 * 3 * 64 * 4
    budget = int(free * 0.8 / (per_token * 1.5))
    assert backend._gpu_batch_tokens() == budget

    prompts = [(GenerationRequest(prompt_id=i, messages=[], num_samples=4), [1] * 100) for i in range(2000)]
    count = backend._fitting_prompts(prompts, num_samples=4, max_new=156)
    assert loaded.batch_tokens == budget  # measured once, then kept
    assert count == budget // (4 * 256)  # every sequence is 100 prompt + 156 new tokens
    assert count * 4 <= tb.GPU_BATCH_SEQUENCES_MAX

    # Plenty of memory: the sequence cap bounds the batch instead.
    loaded.batch_tokens = 1 << 40
    assert backend._fitting_prompts(prompts, num_samples=4, max_new=156) == tb.GPU_BATCH_SEQUENCES_MAX // 4


def test_the_bandwidth_fraction_compares_weight_reads_with_the_gpus_peak():
    # 270 MB of bf16 weights read 640 times in 0.2 s: 864 GB/s, about a quarter of an H100 SXM's 3.35 TB/s.
    report = bandwidth_report(
        weight_bytes=270_000_000, decode_steps=640, seconds=0.2, gpu_name="NVIDIA H100 80GB HBM3"
    )
    assert report["peak_bandwidth_bytes_per_s"] == 3.35e12
    assert report["fraction_of_ceiling"] == pytest.approx(0.258, abs=0.001)
    assert report["ceiling_steps_per_s"] == pytest.approx(12407.4, abs=0.1)
    assert report["steps_per_s"] == 3200.0
    assert report["fraction_with_kv_cache"] == report["fraction_of_ceiling"]  # no KV bytes given
    # The same run reading 780 MB of KV cache per step as well: 1,050 MB a step, 3.36 TB/s, the whole peak.
    with_kv = bandwidth_report(
        weight_bytes=270_000_000,
        decode_steps=640,
        seconds=0.2,
        gpu_name="NVIDIA H100 80GB HBM3",
        kv_bytes_read=640 * 780_000_000,
    )
    assert with_kv["fraction_of_ceiling"] == report["fraction_of_ceiling"]
    assert with_kv["fraction_with_kv_cache"] == pytest.approx(1.003, abs=0.001)
    assert (
        bandwidth_report(weight_bytes=1, decode_steps=1, seconds=1, gpu_name="NVIDIA H100 PCIe")[
            "peak_bandwidth_bytes_per_s"
        ]
        == 2.0e12
    )
    unknown = bandwidth_report(weight_bytes=1, decode_steps=1, seconds=1, gpu_name="Some GPU")
    assert unknown["fraction_of_ceiling"] is None and unknown["peak_bandwidth_bytes_per_s"] is None
