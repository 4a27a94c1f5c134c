from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from comparisons.models import Candidate
from model_runner.models import GenerationJob
from tests.factories import PromptFactory

pytestmark = pytest.mark.django_db


def test_generate_runs_in_process_with_progress_on_stderr(fake_backend):
    prompts = PromptFactory.create_batch(3)
    out, err = StringIO(), StringIO()

    call_command(
        "generate",
        "--prompts",
        *[str(p.pk) for p in prompts],
        "--samples",
        "2",
        "--max-new-tokens",
        "8",
        "--temperature",
        "0.5",
        "--seed",
        "3",
        "--stop",
        "END",
        "--top-p",
        "0.9",
        "--batch-size",
        "2",
        stdout=out,
        stderr=err,
    )

    job = GenerationJob.objects.get()
    assert job.sampling == {"max_new_tokens": 8, "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "seed": 3}
    assert job.status == GenerationJob.Status.SUCCEEDED
    assert Candidate.objects.filter(job=job).count() == 6
    assert len(fake_backend.calls) == 2  # two batches, in this process, no broker
    assert f"job {job.pk} succeeded: 6/6 candidates" in out.getvalue()
    progress = err.getvalue()
    assert "0/6" in progress and "6/6 100%" in progress and "tok/s" in progress and "ETA" in progress


def test_generate_all_prompts(fake_backend):
    PromptFactory.create_batch(2)
    call_command("generate", "--all", "--samples", "1", stdout=StringIO(), stderr=StringIO())
    assert GenerationJob.objects.get().total == 2


def test_generate_enqueue_no_wait_prints_the_job_id(fake_backend):
    prompt = PromptFactory.create()
    out = StringIO()
    call_command(
        "generate", "--prompts", str(prompt.pk), "--enqueue", "--no-wait", stdout=out, stderr=StringIO()
    )
    job = GenerationJob.objects.get()
    assert out.getvalue().strip() == str(job.pk)
    assert job.status == GenerationJob.Status.QUEUED


def test_generate_names_unknown_prompts():
    with pytest.raises(CommandError, match="unknown prompt id: 4242"):
        call_command("generate", "--prompts", "4242", stdout=StringIO(), stderr=StringIO())
    assert not GenerationJob.objects.exists()


def test_generate_reports_prompt_errors_and_fails(fake_backend):
    bad = PromptFactory.create(messages=[{"role": "user", "content": "TOO LONG"}])
    err = StringIO()
    with pytest.raises(CommandError, match="failed"):
        call_command("generate", "--prompts", str(bad.pk), "--samples", "1", stdout=StringIO(), stderr=err)
    assert f"error: prompt {bad.pk}: smollm2-135m-instruct: prompt is too long for the fake" in err.getvalue()
