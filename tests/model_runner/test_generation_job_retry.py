"""Cancel and retry, through the API and the page's buttons."""

from __future__ import annotations

import pytest

from comparisons.models import Candidate
from model_runner import services
from model_runner.models import GenerationJob, Generator
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/generation-jobs/"


@pytest.fixture
def generator():
    return GeneratorFactory.create(name="fake-model", backend=Generator.Backend.BUNDLED)


def _half_done_failed_job(generator, fake_backend):
    """A job of 3 prompts x 2 samples in batches of 1 prompt: the first batch ran, then a batch failed."""
    prompts = PromptFactory.create_batch(3)
    job = services.generation_job_create(
        prompts=prompts, generators=[generator], samples_per_prompt=2, batch_size=1, enqueue=False
    )
    (first, *_rest) = services.generation_job_batches(job=job)
    services.generation_batch_run(job=job, generator=generator, prompt_ids=first[1])
    services.job_status.generation_job_settle(job=job, fatal="worker ran out of disk", generator=generator)
    job.refresh_from_db()
    assert (job.status, job.done) == (GenerationJob.Status.FAILED, 2)
    fake_backend.calls.clear()
    return job, first[1]


def test_retry_api_runs_only_the_unfinished_batches(
    admin_api, generator, fake_backend, django_capture_on_commit_callbacks
):
    job, done_ids = _half_done_failed_job(generator, fake_backend)
    kept = list(Candidate.objects.filter(job=job).values_list("pk", "text"))

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(f"{URL}{job.pk}/retry/")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "queued"
    assert response.json()["errors"] == []
    assert response.json()["finished_at"] is None
    asked = [r.prompt_id for call in fake_backend.calls for r in call]
    assert len(asked) == 2 and not set(asked) & set(done_ids)  # the finished batch is not redone
    detail = admin_api.get(f"{URL}{job.pk}/").json()
    assert (detail["status"], detail["done"], detail["total"]) == ("succeeded", 6, 6)
    assert set(kept) <= set(Candidate.objects.filter(job=job).values_list("pk", "text"))

    again = admin_api.post(f"{URL}{job.pk}/retry/")
    assert again.status_code == 409
    assert "only failed or cancelled jobs can be retried" in again.json()["detail"]


def test_a_cancelled_job_can_be_resumed_by_retry(admin_api, generator, fake_backend):
    prompt = PromptFactory.create()
    job = services.generation_job_create(prompts=[prompt], generators=[generator], enqueue=False)
    assert admin_api.post(f"{URL}{job.pk}/cancel/").json()["status"] == "cancelled"
    assert admin_api.post(f"{URL}{job.pk}/retry/").status_code == 200
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.QUEUED


def test_retry_is_for_admins_and_names_missing_jobs(researcher_api, admin_api):
    assert researcher_api.post(f"{URL}1/retry/").status_code == 403
    response = admin_api.post(f"{URL}424242/retry/")
    assert response.status_code == 404


def test_schema_lists_retry(api):
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert "post" in paths["/api/v1/generation-jobs/{job_id}/retry/"]


def test_the_page_has_cancel_and_retry_buttons_that_work(
    client, admin_user, generator, fake_backend, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    failed, _ = _half_done_failed_job(generator, fake_backend)
    queued = services.generation_job_create(
        prompts=[PromptFactory.create()], generators=[generator], enqueue=False
    )

    html = client.get("/manage/generation/").content.decode()
    assert f'action="/manage/generation/{failed.pk}/retry/"' in html
    assert f'action="/manage/generation/{queued.pk}/cancel/"' in html
    assert "csrfmiddlewaretoken" in html

    response = client.post(f"/manage/generation/{queued.pk}/cancel/", follow=True)
    assert response.status_code == 200
    assert f"Generation job {queued.pk} cancelled" in response.content.decode()
    queued.refresh_from_db()
    assert queued.status == GenerationJob.Status.CANCELLED

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/manage/generation/{failed.pk}/retry/", follow=True)
    assert f"Generation job {failed.pk}: its unfinished batches run again." in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == GenerationJob.Status.SUCCEEDED

    conflict = client.post(f"/manage/generation/{failed.pk}/cancel/", follow=True)
    assert "already succeeded" in conflict.content.decode()
    assert client.get(f"/manage/generation/{failed.pk}/retry/").status_code == 405
    assert client.post(f"/manage/generation/{failed.pk}/explode/").status_code == 404


def test_raters_cannot_press_the_buttons(client, rater, generator):
    job = services.generation_job_create(
        prompts=[PromptFactory.create()], generators=[generator], enqueue=False
    )
    client.force_login(rater)
    assert client.post(f"/manage/generation/{job.pk}/cancel/").status_code == 403
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.QUEUED


def test_resume_all_enqueues_only_unfinished_batches(
    generator, fake_backend, django_capture_on_commit_callbacks
):
    prompts = PromptFactory.create_batch(3)
    job = services.generation_job_create(
        prompts=prompts, generators=[generator], samples_per_prompt=1, batch_size=1, enqueue=False
    )
    first = services.generation_job_batches(job=job)[0]
    services.generation_batch_run(job=job, generator=generator, prompt_ids=first[1])
    fake_backend.calls.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.generation_job_resume_all() == 2

    assert len(fake_backend.calls) == 2
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED


def test_django_admin_actions_cancel_and_retry(client, admin_user, generator, fake_backend):
    client.force_login(admin_user)
    failed, _ = _half_done_failed_job(generator, fake_backend)
    queued = services.generation_job_create(
        prompts=[PromptFactory.create()], generators=[generator], enqueue=False
    )
    url = "/admin/model_runner/generationjob/"

    response = client.post(
        url, {"action": "cancel_jobs", "_selected_action": [queued.pk, failed.pk]}, follow=True
    )

    html = response.content.decode()
    assert f"Generation job {queued.pk}: cancelled" in html
    assert f"Generation job {failed.pk} already failed; nothing to cancel" in html
    client.post(url, {"action": "retry_jobs", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.status == GenerationJob.Status.QUEUED
