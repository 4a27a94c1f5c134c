"""The export API through HTTP: create -> watch -> download, permissions, errors."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from export.models import ExportRun

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
    assert run["progress"] == 1.0 and run["judgments_done"] == run["judgments_total"] == 6
    assert run["row_count"] == 9  # 4 pairs + 5 ranking pairs; 2 ties left out
    assert run["manifest"]["skipped"]["ties"] == 2
    assert run["manifest"]["aggregation"] == "raw"
    assert run["manifest"]["filters"] == {"queues": [export_data.queue.pk]}
    assert run["manifest"]["margin_mapping"]["values"] == {
        "1 (slightly better)": 1.0,
        "2 (better)": 2.0,
        "3 (much better)": 3.0,
    }
    assert run["code_version"] not in ("", "unknown")
    assert run["created_by"] == "researcher-user"
    assert run["filters"] == {"queues": [export_data.queue.pk]}
    assert run["finished_at"] is not None
    assert run["download_url"].endswith(f"/api/v1/exports/{body['id']}/download/")
    paths = [f["path"] for f in run["files"]]
    assert "README.md" in paths and "data/train.parquet" in paths and "data/train.jsonl" in paths
    for f in run["files"]:
        one = researcher_api.get(run["download_url"], {"file": f["path"]})
        assert one.status_code == 200
        content = b"".join(one.streaming_content)
        assert hashlib.sha256(content).hexdigest() == f["sha256"]
        assert len(content) == f["bytes"]
    listing_text = "".join(f"{f['sha256']}  {f['path']}\n" for f in run["files"])
    assert hashlib.sha256(listing_text.encode()).hexdigest() == run["sha256"]

    archive = researcher_api.get(run["download_url"])
    assert archive.status_code == 200
    assert archive["Content-Type"] == "application/zip"
    assert archive["Content-Disposition"] == 'attachment; filename="helpful-v1.zip"'
    with zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content))) as zf:
        assert sorted(zf.namelist()) == sorted(f"helpful-v1/{p}" for p in paths)
        for f in run["files"]:
            assert hashlib.sha256(zf.read(f"helpful-v1/{f['path']}")).hexdigest() == f["sha256"]

    assert researcher_api.get(run["download_url"], {"file": "../../etc/passwd"}).status_code == 404

    listing = researcher_api.get(CREATE)
    assert listing.status_code == 200
    assert [r["id"] for r in listing.json()] == [body["id"]]


@pytest.mark.django_db
def test_estimate_counts_rows_without_writing(researcher_api, export_data):
    response = researcher_api.post(
        "/api/v1/exports/estimate/", {"filters": {"queues": [export_data.queue.pk]}}, format="json"
    )
    assert response.status_code == 200, response.json()
    # 5 pair judgments + C(4,2) = 6 ranking pairs; ties are only known when the export runs.
    assert response.json() == {
        "judgments": 6,
        "rankings": 1,
        "comparisons": 6,
        "rows": 11,
        "upper_bound": True,
    }
    bad = researcher_api.post("/api/v1/exports/estimate/", {"filters": {"min_agreement": 2}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "filters.min_agreement"
    assert ExportRun.objects.count() == 0


@pytest.mark.django_db
def test_admin_may_export(admin_api, django_capture_on_commit_callbacks):
    response, _ = create(admin_api, django_capture_on_commit_callbacks, {})
    assert response.status_code == 201
    run = ExportRun.objects.get(pk=response.json()["id"])
    assert run.status == ExportRun.Status.SUCCEEDED
    assert run.row_count == 0  # an empty dataset is a valid, empty file
    assert run.name == "preferences" and run.format == "trl"
    assert [f["path"] for f in run.files] == ["README.md", "data/train.jsonl", "data/train.parquet"]


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
    # TokenAuthentication comes first, so DRF answers "not authenticated" with 401 and a challenge.
    response = api.get(CREATE)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"filters": {"rater": 3}}, "filters.rater", "Unknown filter 'rater'"),
        ({"filters": {"since": "last week"}}, "filters.since", "since"),
        ({"filters": {"queues": [424242]}}, "filters.queues", "424242"),
        ({"format": "hh-rlhf"}, "format", "hh-rlhf"),
        ({"name": "../etc/passwd"}, "name", "../etc/passwd"),
        ({"filters": {"rubric_versions": [99999]}}, "filters.rubric_versions", "99999"),
        ({"filters": {"generators": ["nope"]}}, "filters.generators", "nope"),
        ({"filters": {"tags": [""]}}, "filters.tags", "tags"),
        ({"filters": {"min_judgments": 0}}, "filters.min_judgments", "min_judgments"),
        ({"filters": {"min_agreement": 1.5}}, "filters.min_agreement", "min_agreement"),
        ({"filters": {"exclude_gold": "yes"}}, "filters.exclude_gold", "exclude_gold"),
        ({"filters": {"exclude_flagged": 1}}, "filters.exclude_flagged", "exclude_flagged"),
        (
            {"filters": {"exclude_paused_raters": "no"}},
            "filters.exclude_paused_raters",
            "exclude_paused_raters",
        ),
        ({"filters": {"until": "2024-01-01", "since": "2024-02-01"}}, "filters.until", "later"),
        ({"aggregation": "median"}, "aggregation", "median"),
        ({"format": "native", "aggregation": "majority"}, "aggregation", "raw"),
        ({"options": {"standard": True}, "format": "hh"}, "options.standard", "trl"),
        ({"options": {"pairs": True}}, "options.pairs", "rankings"),
        ({"options": {"files": ["csv"]}}, "options.files", "csv"),
        ({"options": {"test_fraction": 0.9}}, "options.test_fraction", "0.5"),
        ({"options": {"shuffle": True}}, "options.shuffle", "Unknown option"),
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
