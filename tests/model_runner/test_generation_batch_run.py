"""The batch worker's guarantees, driven through the services with the fake backend."""

from __future__ import annotations

import pytest

from comparisons.models import Candidate
from labeling.errors import ApplicationError, Conflict
from model_runner import selectors, services
from model_runner.models import GenerationJob, Generator
from model_runner.tasks import generation_batch_task
from tests.factories import CandidateFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def generator():
    return GeneratorFactory.create(name="fake-model", backend=Generator.Backend.BUNDLED)


def _job(prompts, generators, k=2, **kwargs) -> GenerationJob:
    return services.generation_job_create(
        prompts=prompts, generators=generators, samples_per_prompt=k, enqueue=False, **kwargs
    )


def _rows(generator):
    return sorted(
        Candidate.objects.filter(generator=generator).values_list("prompt_id", "sample_index", "text")
    )


def test_batch_writes_k_samples_per_prompt_with_metadata(fake_backend, generator):
    prompts = PromptFactory.create_batch(2)
    job = _job(prompts, [generator], k=3, sampling={"seed": 5, "max_new_tokens": 8})

    inserted = services.generation_batch_run(job=job, generator=generator, prompt_ids=[p.pk for p in prompts])

    assert inserted == 6
    candidate = Candidate.objects.get(prompt=prompts[0], generator=generator, sample_index=2)
    assert candidate.text == f"{prompts[0].pk}: sample 2"
    assert candidate.job_id == job.pk
    assert candidate.model_revision == "fake-rev-1"
    assert candidate.sampling["max_new_tokens"] == 8
    assert candidate.sampling["temperature"] == 0.7  # built-in default under the job's overrides
    assert candidate.seed is not None
    assert (candidate.prompt_tokens, candidate.completion_tokens, candidate.finish_reason) == (7, 3, "stop")
    assert candidate.latency_ms == 10
    job.refresh_from_db()
    assert (job.status, job.done, job.total) == (GenerationJob.Status.SUCCEEDED, 6, 6)
    assert job.completion_tokens == 18
    assert job.started_at is not None and job.finished_at is not None


def test_rerunning_a_batch_writes_nothing_new(fake_backend, generator):
    prompts = PromptFactory.create_batch(2)
    job = _job(prompts, [generator])
    ids = [p.pk for p in prompts]
    services.generation_batch_run(job=job, generator=generator, prompt_ids=ids)
    before = _rows(generator)
    job.status = GenerationJob.Status.RUNNING  # as if redelivered before the job was seen finished
    job.save(update_fields=["status"])
    fake_backend.calls.clear()

    assert services.generation_batch_run(job=job, generator=generator, prompt_ids=ids) == 0

    assert _rows(generator) == before
    assert fake_backend.calls == []  # nothing missing: the model is not even asked
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED


def test_partially_done_prompt_gets_only_its_missing_samples(fake_backend, generator):
    done_prompt, half_prompt, new_prompt = PromptFactory.create_batch(3)
    for i in range(3):
        CandidateFactory.create(prompt=done_prompt, generator=generator, sample_index=i, text=f"old {i}")
    CandidateFactory.create(prompt=half_prompt, generator=generator, sample_index=1, text="old half")
    job = _job([done_prompt, half_prompt, new_prompt], [generator], k=3)

    inserted = services.generation_batch_run(
        job=job, generator=generator, prompt_ids=[done_prompt.pk, half_prompt.pk, new_prompt.pk]
    )

    assert inserted == 2 + 3
    (requests,) = fake_backend.calls
    assert {(r.prompt_id, r.num_samples) for r in requests} == {(half_prompt.pk, 2), (new_prompt.pk, 3)}
    half = dict(Candidate.objects.filter(prompt=half_prompt).values_list("sample_index", "text"))
    assert half == {0: f"{half_prompt.pk}: sample 0", 1: "old half", 2: f"{half_prompt.pk}: sample 1"}
    assert Candidate.objects.filter(prompt=done_prompt).count() == 3
    job.refresh_from_db()
    assert (job.done, job.total, job.status) == (9, 9, GenerationJob.Status.SUCCEEDED)
    assert job.completion_tokens == 5 * 3  # only what this job made


def test_rows_written_meanwhile_by_another_worker_are_not_duplicated(fake_backend, generator):
    prompt = PromptFactory.create()
    job = _job([prompt], [generator], k=2)

    def concurrent_worker() -> None:
        CandidateFactory.create(prompt=prompt, generator=generator, sample_index=0, text="the other worker")

    fake_backend.during = concurrent_worker

    inserted = services.generation_batch_run(job=job, generator=generator, prompt_ids=[prompt.pk])

    assert inserted == 1
    assert _rows(generator) == [(prompt.pk, 0, "the other worker"), (prompt.pk, 1, f"{prompt.pk}: sample 1")]
    job.refresh_from_db()
    assert (job.done, job.status) == (2, GenerationJob.Status.SUCCEEDED)


def test_job_with_two_generators_finishes_after_both(fake_backend, generator):
    other = GeneratorFactory.create(name="fake-two", backend=Generator.Backend.TRANSFORMERS, model_path="/x")
    prompts = PromptFactory.create_batch(3)
    job = _job(prompts, [generator, other], k=1, batch_size=2)
    batches = services.generation_job_batches(job=job)
    assert [(g, len(ids)) for g, ids in batches] == [
        (generator.pk, 2),
        (generator.pk, 1),
        (other.pk, 2),
        (other.pk, 1),
    ]

    for generator_id, prompt_ids in batches[:3]:
        generation_batch_task(job.pk, generator_id, prompt_ids)
        job.refresh_from_db()
        assert job.status == GenerationJob.Status.RUNNING
    generation_batch_task(job.pk, *batches[3])

    job.refresh_from_db()
    assert (job.done, job.total, job.status) == (6, 6, GenerationJob.Status.SUCCEEDED)


def test_batches_sort_prompts_by_length():
    long = PromptFactory.create(messages=[{"role": "user", "content": "x" * 500}])
    short = PromptFactory.create(messages=[{"role": "user", "content": "hi"}])
    middle = PromptFactory.create(messages=[{"role": "user", "content": "x" * 50}])
    job = _job([long, short, middle], [services.generator_get_bundled()], batch_size=2)

    assert [ids for _, ids in services.generation_job_batches(job=job)] == [[short.pk, middle.pk], [long.pk]]


def test_job_create_enqueues_one_task_per_batch_on_commit(
    fake_backend, generator, django_capture_on_commit_callbacks
):
    prompts = PromptFactory.create_batch(5)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = services.generation_job_create(
            prompts=prompts, generators=[generator], samples_per_prompt=2, batch_size=2
        )
    assert len(callbacks) == 1
    assert len(fake_backend.calls) == 3  # 5 prompts in batches of 2
    job.refresh_from_db()
    assert (job.status, job.done, job.total) == (GenerationJob.Status.SUCCEEDED, 10, 10)


def test_a_prompt_that_cannot_be_answered_is_recorded_and_the_job_still_ends(fake_backend, generator):
    fine = PromptFactory.create()
    bad = PromptFactory.create(messages=[{"role": "user", "content": "TOO LONG " * 3}])
    job = _job([fine, bad], [generator], k=2)

    services.generation_batch_run(job=job, generator=generator, prompt_ids=[fine.pk, bad.pk])

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert job.errors == [
        {
            "prompt_id": bad.pk,
            "generator": "fake-model",
            "generator_id": generator.pk,
            "error": "prompt is too long for the fake",
        }
    ]
    assert (job.done, job.total) == (2, 4)
    assert Candidate.objects.filter(prompt=fine).count() == 2
    assert not Candidate.objects.filter(prompt=bad).exists()


def test_cancelled_job_batches_write_nothing(fake_backend, generator):
    prompt = PromptFactory.create()
    job = _job([prompt], [generator])
    services.generation_job_cancel(job=job)

    assert generation_batch_task(job.pk, generator.pk, [prompt.pk]) == 0
    assert services.generation_batch_run(job=job, generator=generator, prompt_ids=[prompt.pk]) == 0

    assert not Candidate.objects.exists()
    assert fake_backend.calls == []
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.CANCELLED


def test_cancel_while_a_batch_generates_discards_its_output(fake_backend, generator):
    prompt = PromptFactory.create()
    job = _job([prompt], [generator])
    fake_backend.during = lambda: services.generation_job_cancel(job=GenerationJob.objects.get(pk=job.pk))

    assert services.generation_batch_run(job=job, generator=generator, prompt_ids=[prompt.pk]) == 0

    assert not Candidate.objects.exists()
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.CANCELLED


def test_cancel_of_a_finished_job_is_a_conflict(fake_backend, generator):
    prompt = PromptFactory.create()
    job = _job([prompt], [generator], k=1)
    services.generation_batch_run(job=job, generator=generator, prompt_ids=[prompt.pk])
    with pytest.raises(Conflict, match="already succeeded"):
        services.generation_job_cancel(job=job)


def test_an_incomplete_openai_generator_fails_the_job_readably():
    generator = GeneratorFactory.create(
        name="remote", backend=Generator.Backend.OPENAI, model_path="http://x"
    )
    prompt = PromptFactory.create()
    job = _job([prompt], [generator])

    services.generation_batch_run(job=job, generator=generator, prompt_ids=[prompt.pk])

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert job.errors[0]["generator"] == "remote"
    assert job.errors[0]["error"] == (
        "generator 'remote': model_name is empty (the model the endpoint serves)"
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"samples_per_prompt": 0}, "samples_per_prompt", "between 1 and 16"),
        ({"samples_per_prompt": 17}, "samples_per_prompt", "between 1 and 16"),
        ({"batch_size": 0}, "batch_size", "between 1 and"),
        ({"prompts": []}, "prompts", "at least one prompt"),
        ({"generators": []}, "generators", "at least one generator"),
        ({"sampling": {"temprature": 1}}, "sampling", "temprature: unknown sampling setting"),
        ({"sampling": {"top_p": 2}}, "sampling", "top_p: must be greater than 0 and at most 1"),
        ({"sampling": {"max_new_tokens": "many"}}, "sampling", "max_new_tokens: must be a number"),
    ],
)
def test_job_create_rejects_bad_input_naming_the_field(kwargs, field, message):
    args = {"prompts": [PromptFactory.create()], "generators": [services.generator_get_bundled()], **kwargs}
    with pytest.raises(ApplicationError) as info:
        services.generation_job_create(**args)
    assert info.value.field == field
    assert message in info.value.message
    assert not GenerationJob.objects.exists()


def test_job_create_rejects_a_generator_that_does_not_generate():
    imported = GeneratorFactory.create(name="elsewhere", backend=Generator.Backend.IMPORTED)
    with pytest.raises(ApplicationError, match="'elsewhere' has backend 'imported'"):
        services.generation_job_create(prompts=[PromptFactory.create()], generators=[imported])


def test_wait_returns_the_finished_job_and_reports_progress(fake_backend, generator):
    prompt = PromptFactory.create()
    job = _job([prompt], [generator], k=1)
    seen: list[str] = []

    def on_progress(current: GenerationJob) -> None:
        seen.append(current.status)
        if current.status == GenerationJob.Status.QUEUED:
            # Stands in for a worker process: its own copy of the row.
            worker_copy = GenerationJob.objects.get(pk=current.pk)
            services.generation_batch_run(job=worker_copy, generator=generator, prompt_ids=[prompt.pk])

    finished = selectors.generation_job_wait(job=job, on_progress=on_progress, poll_seconds=0.01, timeout=5)

    assert finished.status == GenerationJob.Status.SUCCEEDED
    assert seen == [GenerationJob.Status.QUEUED, GenerationJob.Status.SUCCEEDED]


def test_wait_times_out_with_a_clear_message(generator):
    job = _job([PromptFactory.create()], [generator], k=1)
    with pytest.raises(TimeoutError, match=f"generation job {job.pk} still queued"):
        selectors.generation_job_wait(job=job, poll_seconds=0.01, timeout=0.05)


def test_bundled_generator_is_created_once():
    first = services.generator_get_bundled()
    assert services.generator_get_bundled() == first
    assert first.backend == Generator.Backend.BUNDLED
    assert first.name == "smollm2-135m-instruct"
