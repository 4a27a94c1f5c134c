"""The export API through HTTP: create -> watch -> download, permissions, errors."""

from __future__ import annotations

import io

import pytest

from export.models import ExportRun
from export.services import export_preferences_write

CREATE = "/api/v1/exports/"


def create(client, django_capture_on_commit_callbacks, body):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(CREATE, body, format="json")
    return response, callbacks


@pytest.mark.django_db
def test_researcher_creates_watches_and_downloads(
    researcher_api, export_data, django_capture_on_commit_callbacks
):
    response, callbacks = create(
        researcher_api,
        django_capture_on_commit_callbacks,
        {"format": "trl", "filters": {"queues": [export_data.queue.pk]}, "name": "helpful-v1"},
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued"
    assert body["download_url"] is None
    assert len(callbacks) == 1  # the task is enqueued once, after commit

    detail = researcher_api.get(f"/api/v1/exports/{body['id']}/")
    assert detail.status_code == 200
    run = detail.json()
    assert run["status"] == "succeeded", run["error"]
    assert run["row_count"] == 4
    assert run["manifest"]["skipped"] == {"ties": 1, "rankings": 1}
    assert run["manifest"]["view"] == "conversational, explicit prompt"
    assert run["manifest"]["filters"] == {"queues": [export_data.queue.pk]}
    assert run["manifest"]["margin_mapping"]["values"] == {
        "1 (slightly better)": 1.0,
        "2 (better)": 2.0,
        "3 (much better)": 3.0,
    }
    assert run["manifest"]["code_version"] not in ("", "unknown")
    assert run["filters"] == {"queues": [export_data.queue.pk]}
    assert run["finished_at"] is not None
    assert run["download_url"].endswith(f"/api/v1/exports/{body['id']}/download/")

    download = researcher_api.get(run["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/x-ndjson"
    assert download["Content-Disposition"] == 'attachment; filename="helpful-v1.jsonl"'
    content = b"".join(download.streaming_content)

    expected = io.BytesIO()
    export_preferences_write(out=expected, filters={"queues": [export_data.queue.pk]}, name="helpful-v1")
    assert content == expected.getvalue()
    import hashlib

    assert hashlib.sha256(content).hexdigest() == run["sha256"]

    listing = researcher_api.get(CREATE)
    assert listing.status_code == 200
    assert [r["id"] for r in listing.json()] == [body["id"]]


@pytest.mark.django_db
def test_admin_may_export(admin_api, django_capture_on_commit_callbacks):
    response, _ = create(admin_api, django_capture_on_commit_callbacks, {})
    assert response.status_code == 201
    run = ExportRun.objects.get(pk=response.json()["id"])
    assert run.status == ExportRun.Status.SUCCEEDED
    assert run.row_count == 0  # an empty dataset is a valid, empty file
    assert run.name == "preferences" and run.format == "trl"


@pytest.mark.django_db
def test_rater_gets_403_everywhere(rater_api, researcher, django_capture_on_commit_callbacks):
    run = ExportRun.objects.create(created_by=researcher)
    response, _ = create(rater_api, django_capture_on_commit_callbacks, {"name": "x"})
    assert response.status_code == 403
    assert rater_api.get(CREATE).status_code == 403
    assert rater_api.get(f"/api/v1/exports/{run.pk}/").status_code == 403
    assert rater_api.get(f"/api/v1/exports/{run.pk}/download/").status_code == 403
    assert ExportRun.objects.count() == 1


@pytest.mark.django_db
def test_anonymous_is_refused(api):
    assert api.get(CREATE).status_code in (401, 403)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"filters": {"rater": 3}}, "filters.rater", "Unknown filter 'rater'"),
        ({"filters": {"since": "last week"}}, "filters.since", "since"),
        ({"filters": {"queues": [424242]}}, "filters.queues", "424242"),
        ({"format": "hh-rlhf"}, "format", "hh-rlhf"),
        ({"name": "../etc/passwd"}, "name", "../etc/passwd"),
    ],
)
@pytest.mark.django_db
def test_bad_input_is_400_naming_the_field(
    researcher_api, django_capture_on_commit_callbacks, body, field, words
):
    response, callbacks = create(researcher_api, django_capture_on_commit_callbacks, body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert words in response.json()["detail"]
    assert ExportRun.objects.count() == 0
    assert callbacks == []


@pytest.mark.django_db
def test_download_before_success_is_409(researcher_api, researcher):
    run = ExportRun.objects.create(created_by=researcher)
    response = researcher_api.get(f"/api/v1/exports/{run.pk}/download/")
    assert response.status_code == 409
    assert "queued" in response.json()["detail"]


@pytest.mark.django_db
def test_unknown_run_is_404(researcher_api):
    assert researcher_api.get("/api/v1/exports/999999/").status_code == 404
    assert researcher_api.get("/api/v1/exports/999999/download/").status_code == 404
