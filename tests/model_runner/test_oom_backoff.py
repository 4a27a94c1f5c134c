"""Out-of-memory backoff of the transformers backend, with an injected OOM around the real model."""

from __future__ import annotations

import pytest

from comparisons.models import Candidate
from model_runner import services
from model_runner.backends.base import GenerationRequest, sampling_merge
from model_runner.models import GenerationJob, Generator
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = [pytest.mark.model, pytest.mark.django_db]

SAMPLING = sampling_merge({"max_new_tokens": 2, "seed": 3})


@pytest.fixture
def tb():
    """The backend module, with the process-wide remembered batch size restored afterwards."""
    from model_runner.backends import transformers_backend, transformers_loading

    saved = {key: loaded.batch_tokens for key, loaded in transformers_loading._loaded.items()}
    yield transformers_backend
    for key, loaded in transformers_loading._loaded.items():
        loaded.batch_tokens = saved.get(key)


def _oom_above(tb, monkeypatch, limit: int) -> list[int]:
    """Make model batches of more than ``limit`` prompts raise CUDA's out-of-memory error."""
    sizes: list[int] = []
    real = tb.TransformersBackend._run_batch

    def run_batch(self, batch, sampling):
        sizes.append(len(batch))
        if len(batch) > limit:
            raise tb.torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, batch, sampling)

    monkeypatch.setattr(tb.TransformersBackend, "_run_batch", run_batch)
    return sizes


def test_an_oom_halves_the_batch_and_retries_the_same_prompts(tb, monkeypatch):
    generator = GeneratorFactory.create(
        name="smol-oom", backend=Generator.Backend.BUNDLED, options={"max_batch_sequences": 8}
    )
    backend = tb.backend_for_generator(generator)
    backend.loaded.batch_tokens = None  # no budget known yet: 8 sequences / 2 samples = 4 prompts
    sizes = _oom_above(tb, monkeypatch, limit=2)
    requests = [
        GenerationRequest(prompt_id=i, messages=[{"role": "user", "content": f"Say {i}."}], num_samples=2)
        for i in range(6)
    ]

    outcomes = [o for chunk in backend.generate(requests, sampling=SAMPLING, batch_size=16) for o in chunk]

    assert sizes == [4, 2, 2, 2]  # 4 did not fit; halved, then every batch at the size that fits
    assert backend.oom_halvings == 1
    width = len(backend._prompt_ids(requests[0].messages))  # the six prompts are equally long
    assert backend.loaded.batch_tokens == 2 * 2 * (width + 2)  # remembered for later batches of this process
    assert sorted(o.prompt_id for o in outcomes) == list(range(6))
    assert all(o.error is None and len(o.samples) == 2 for o in outcomes)


def test_one_prompt_that_does_not_fit_fails_the_job_readably(tb, monkeypatch):
    generator = GeneratorFactory.create(name="smol-oom-1", backend=Generator.Backend.BUNDLED)
    _oom_above(tb, monkeypatch, limit=0)
    prompt = PromptFactory.create(messages=[{"role": "user", "content": "Hello"}])
    job = services.generation_job_create(
        prompts=[prompt],
        generators=[generator],
        samples_per_prompt=2,
        sampling={"max_new_tokens": 2},
        enqueue=False,
    )

    services.generation_batch_run(job=job, generator=generator, prompt_ids=[prompt.pk])

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert job.errors[0]["error"].startswith(
        "generator 'smol-oom-1': out of memory generating 2 sample(s) of one prompt"
    )
    assert "lower max_new_tokens or samples_per_prompt" in job.errors[0]["error"]
    assert not Candidate.objects.exists()


def test_other_errors_are_not_mistaken_for_oom(tb):
    assert tb.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB"))
    assert tb.is_out_of_memory(tb.torch.OutOfMemoryError("CUDA out of memory"))
    assert not tb.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not tb.is_out_of_memory(ValueError("out of memory"))


def test_the_shared_prefill_changes_nothing_but_the_cost(tb, monkeypatch):
    generator = GeneratorFactory.create(name="smol-prefill", backend=Generator.Backend.BUNDLED)
    backend = tb.backend_for_generator(generator)
    requests = [
        GenerationRequest(
            prompt_id=i, messages=[{"role": "user", "content": "Hi! " * (1 + 3 * i)}], num_samples=3
        )
        for i in range(3)
    ]
    sampling = sampling_merge({"max_new_tokens": 6, "seed": 11, "temperature": 1.0})

    def texts():
        return [
            [s.text for s in o.samples]
            for c in backend.generate(requests, sampling=sampling, batch_size=8)
            for o in c
        ]

    calls: list[int] = []
    real = tb.TransformersBackend._shared_prefill

    def counted(self, input_ids, attention, num_samples):
        calls.append(input_ids.shape[0])
        return real(self, input_ids, attention, num_samples)

    monkeypatch.setattr(tb.TransformersBackend, "_shared_prefill", counted)
    shared = texts()
    monkeypatch.setattr(tb.TransformersBackend, "_shared_prefill", lambda self, *args: None)
    assert texts() == shared  # K full prefills give the very same samples
    assert calls == [3]  # one prefill of the 3 prompts, not 9
