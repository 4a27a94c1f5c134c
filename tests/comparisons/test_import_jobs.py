"""A file over PREFLAB_IMPORT_ASYNC_BYTES is imported by a worker: 202 with an ImportJob to watch
(API) or a row that refreshes itself (page); still all-or-nothing. Smaller files keep answering 201.
Tasks run eagerly in tests (tests/conftest.py)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from comparisons import readers
from comparisons.models import ImportJob, Prompt
from comparisons.services import import_jobs
from comparisons.services.import_jobs import import_job_execute, import_job_resume_all, imports_root

from .helpers import jsonl, user

URL = "/api/v1/prompts/import/"

pytestmark = pytest.mark.django_db

ROWS = [{"id": f"p{i}", "messages": user(f"Question number {i}?")} for i in range(30)]


@pytest.fixture
def small_threshold(settings):
    settings.PREFLAB_IMPORT_ASYNC_BYTES = 200
    return settings


def _upload(name: str, body: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, body)


def test_a_small_file_still_answers_201(admin_api, small_threshold):
    response = admin_api.post(URL, {"file": _upload("p.jsonl", jsonl(ROWS[0]))}, format="multipart")

    assert response.status_code == 201
    assert not ImportJob.objects.exists()


def test_a_big_file_answers_202_and_the_job_imports_it(
    admin_api, small_threshold, django_capture_on_commit_callbacks
):
    body = jsonl(*ROWS)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_api.post(
            URL, {"file": _upload("big.jsonl", body), "collection": "bg", "tags": "x"}, format="multipart"
        )

    assert response.status_code == 202, response.json()
    job = response.json()
    assert (job["status"], job["kind"], job["format"], job["file_name"], job["file_bytes"]) == (
        "queued",
        "prompts",
        "jsonl",
        "big.jsonl",
        len(body),
    )
    assert response["Location"] == job["url"] == f"/api/v1/imports/{job['id']}/"
    saved = imports_root() / ImportJob.objects.get().file_path
    assert saved.read_bytes() == body
    assert not Prompt.objects.exists()

    for callback in callbacks:  # the worker's turn
        callback()

    done = admin_api.get(job["url"]).json()
    assert done["status"] == "succeeded", done
    assert (done["lines_done"], done["lines_total"], done["progress"]) == (30, 30, 1.0)
    assert done["result"] == {"prompts": {"created": 30, "existing": 0}}
    assert done["error"] == "" and done["errors"] == []
    assert Prompt.objects.filter(collection="bg").count() == 30
    assert all(p.tags == ["x"] for p in Prompt.objects.all())
    assert not saved.exists() and not saved.parent.exists()
    assert [j["id"] for j in admin_api.get("/api/v1/imports/").json()] == [job["id"]]


def test_a_failed_job_lists_the_bad_lines_and_writes_nothing(
    admin_api, small_threshold, django_capture_on_commit_callbacks
):
    body = jsonl(*ROWS[:10], {"messages": []}, *ROWS[10:20], {"prompt": "a\u0000b"})
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(URL, {"file": _upload("bad.jsonl", body)}, format="multipart")

    assert response.status_code == 202
    job = admin_api.get(response.json()["url"]).json()
    assert job["status"] == "failed"
    assert job["error"].startswith("line 11: messages: must be a non-empty list")
    assert [(e["line"], e["field"]) for e in job["errors"]] == [(11, "messages"), (22, "prompt")]
    assert job["error_count"] == 2
    assert job["result"] == {}
    assert not Prompt.objects.exists()
    assert not any(imports_root().iterdir())


def test_the_page_lists_a_failed_jobs_problems(
    client, admin_user, small_threshold, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    body = jsonl(*ROWS[:10], {"messages": []}, {"prompt": "a\u0000b"})
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/manage/import/",
            {"kind": "prompts", "prompts-file": _upload("bad.jsonl", body), "prompts-source": "import"},
        )

    html = client.get("/manage/import/").content.decode()
    assert "line 11: messages: must be a non-empty list" in html
    assert "Every problem found (2)" in html and "<td>12</td>" in html and "<td>prompt</td>" in html
    assert "Nothing was written." in html and 'data-active="0"' in html


def test_a_raw_body_over_the_threshold_is_a_job_too(
    admin_api, small_threshold, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(
            "/api/v1/candidates/import/",
            data=jsonl(*[{"messages": r["messages"], "text": "An answer.", "generator": "m"} for r in ROWS]),
            content_type="application/jsonl",
        )

    assert response.status_code == 202, response.json()
    job = ImportJob.objects.get()
    assert (job.kind, job.status, job.file_name) == ("candidates", "succeeded", "upload.jsonl")
    assert job.result == {
        "candidates": {"created": 30, "existing": 0},
        "prompts": {"created": 30, "existing": 0},
    }


def test_preferences_import_as_a_job(admin_api, small_threshold, django_capture_on_commit_callbacks):
    rows = [{"prompt": f"Q{i}?", "chosen": "Good.", "rejected": "Bad."} for i in range(20)]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(
            "/api/v1/preferences/import/", {"file": _upload("prefs.jsonl", jsonl(*rows))}, format="multipart"
        )

    assert response.status_code == 202
    job = ImportJob.objects.get()
    assert job.status == "succeeded"
    assert job.options["dataset"] == "prefs"
    assert job.result["preferences"] == {"created": 20, "existing": 0}


def test_progress_is_recorded_while_reading(small_threshold, admin_user, monkeypatch):
    monkeypatch.setattr(readers, "_PROGRESS_EVERY", 10)
    seen: list[tuple[int, int | None]] = []
    original = import_jobs._JobProgress.lines_read

    def record(self, done):
        original(self, done)
        job = ImportJob.objects.get(pk=self.import_job.pk)
        seen.append((job.lines_done, job.lines_total))

    monkeypatch.setattr(import_jobs._JobProgress, "lines_read", record)
    job = import_jobs.import_start(
        kind="prompts",
        upload=_upload("p.jsonl", jsonl(*ROWS)),
        created_by=admin_user,
        options={},
        file_name="p.jsonl",
        size=10_000,
    )
    assert isinstance(job, ImportJob)

    import_job_execute(import_job=job)

    assert seen == [(10, 30), (20, 30), (30, 30)]
    job.refresh_from_db()
    assert (job.status, job.lines_done, job.writing, job.progress) == ("succeeded", 30, False, 1.0)


def test_a_finished_job_is_never_run_again(small_threshold, admin_user):
    job = import_jobs.import_start(
        kind="prompts",
        upload=_upload("p.jsonl", jsonl(*ROWS)),
        created_by=admin_user,
        options={},
        size=10_000,
    )
    assert isinstance(job, ImportJob)
    import_job_execute(import_job=job)
    Prompt.objects.all().delete()

    again = import_job_execute(import_job=ImportJob.objects.get(pk=job.pk))

    assert again.status == "succeeded"
    assert not Prompt.objects.exists()


def test_a_job_whose_file_is_gone_fails_with_a_reason(small_threshold, admin_user):
    job = import_jobs.import_start(
        kind="prompts",
        upload=_upload("p.jsonl", jsonl(*ROWS)),
        created_by=admin_user,
        options={},
        size=10_000,
    )
    assert isinstance(job, ImportJob)
    (imports_root() / job.file_path).unlink()

    import_job_execute(import_job=job)

    job.refresh_from_db()
    assert job.status == "failed" and "gone" in job.error


def test_a_running_job_is_enqueued_again_after_a_worker_restart(
    small_threshold, admin_user, django_capture_on_commit_callbacks
):
    job = import_jobs.import_start(
        kind="prompts",
        upload=_upload("p.jsonl", jsonl(*ROWS)),
        created_by=admin_user,
        options={},
        size=10_000,
    )
    assert isinstance(job, ImportJob)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)  # its worker died

    with django_capture_on_commit_callbacks(execute=True):
        assert import_job_resume_all() == 1

    assert ImportJob.objects.get(pk=job.pk).status == "succeeded"
    assert Prompt.objects.count() == 30


def test_an_upload_over_the_file_limit_is_refused_before_any_job(admin_api, small_threshold, monkeypatch):
    from comparisons import importing

    monkeypatch.setattr(importing, "MAX_FILE_BYTES", 500)
    response = admin_api.post(URL, data=jsonl(*ROWS), content_type="application/jsonl")

    assert response.status_code == 400
    assert response.json()["field"] == "file"
    assert not ImportJob.objects.exists()
    assert not imports_root().exists() or not any(imports_root().iterdir())


def test_only_admins_watch_jobs(rater_api, researcher_api, admin_api):
    for client in (rater_api, researcher_api):
        assert client.get("/api/v1/imports/").status_code == 403
    assert admin_api.get("/api/v1/imports/999999/").status_code == 404
    assert admin_api.get(f"/api/v1/imports/{2**70}/").status_code == 404


def test_the_page_runs_a_big_file_in_the_background(
    client, admin_user, small_threshold, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/manage/import/",
            {
                "kind": "prompts",
                "prompts-file": _upload("big.jsonl", jsonl(*ROWS)),
                "prompts-source": "import",
            },
        )
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/manage/import/?job={job.pk}#job-{job.pk}"

    page = client.get(response["Location"]).content.decode()
    assert "being imported in the background" in page
    assert f'id="job-{job.pk}"' in page and 'data-active="1"' in page and "refresh.js" in page

    for callback in callbacks:
        callback()
    fragment = client.get(f"/manage/import/?fragment=jobs&job={job.pk}").content.decode()
    assert fragment.lstrip().startswith('<section id="import-jobs"')
    assert 'data-active="0"' in fragment
    assert "prompts: 30 new, 0 already there" in fragment


def test_a_long_or_odd_file_name_is_saved_under_a_safe_one(
    admin_api, small_threshold, django_capture_on_commit_callbacks
):
    name = "x" * 300 + " $weird.jsonl"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(URL, {"file": _upload(name, jsonl(*ROWS))}, format="multipart")

    assert response.status_code == 202, response.json()
    job = ImportJob.objects.get()
    assert job.status == "succeeded", job.error
    assert len(job.file_name) <= 255
    assert job.file_path.endswith(".jsonl") and len(job.file_path) < 140
