"""The /export/ page: researchers create runs and see past ones; others get 403."""

from __future__ import annotations

import pytest
from django.test import Client

from export.models import ExportRun
from export.services import export_run_execute

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.export.urls")]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(**overrides):
    data = {
        "name": "preferences",
        "format": "trl",
        "aggregation": "raw",
        "file_kinds": ["jsonl", "parquet"],
        "test_fraction": "0.1",
        "validation_fraction": "0",
    }
    data.update(overrides)
    return data


def test_rater_gets_403(rater):
    assert client_for(rater).get("/export/").status_code == 403


def test_anonymous_is_sent_to_login():
    response = Client().get("/export/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_researcher_creates_an_export_and_sees_it(
    researcher, export_data, django_capture_on_commit_callbacks
):
    client = client_for(researcher)
    page = client.get("/export/")
    assert page.status_code == 200
    assert "export-main" in page.content.decode()  # the queue select

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/export/", form_data(queues=[export_data.queue.pk], name="page-export"))
    assert response.status_code == 302
    run = ExportRun.objects.get()
    assert run.status == ExportRun.Status.SUCCEEDED, run.error
    assert run.filters == {"queues": [export_data.queue.pk]}
    # The researcher lands on the new run: its row is marked and the address anchors it.
    assert response["Location"] == f"/export/?run={run.pk}#run-{run.pk}"
    landed = client.get(response["Location"]).content.decode()
    assert f'<tr id="run-{run.pk}" data-status="succeeded"' in landed
    assert 'class="current" aria-current="true"' in landed
    assert f"Export {run.pk} (page-export) was queued" in landed

    html = client.get("/export/").content.decode()
    assert "page-export" in html
    assert str(run.row_count) in html
    assert run.sha256[:16] in html
    assert f"/api/v1/exports/{run.pk}/download/" in html
    assert "data/train.parquet" in html
    # The page's links work with the browser session.
    download = client.get(f"/api/v1/exports/{run.pk}/download/")
    assert download.status_code == 200
    assert client.get(f"/api/v1/exports/{run.pk}/download/?file=README.md").status_code == 200


def test_live_estimate_endpoint(researcher, export_data):
    client = client_for(researcher)
    response = client.get("/export/estimate/", form_data(queues=[export_data.other_queue.pk]))
    assert response.status_code == 200
    assert response.json()["judgments"] == 1 and response.json()["rows"] == 1
    bad = client.get("/export/estimate/", form_data(min_agreement="7"))
    assert bad.status_code == 400 and bad.json()["field"] == "min_agreement"
    assert client_for(export_data.raters[0]).get("/export/estimate/").status_code == 403


def test_page_options_reach_the_run(researcher, export_data, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(researcher).post(
            "/export/",
            form_data(
                format="hh",
                aggregation="majority",
                exclude_gold="on",
                gzip="on",
                file_kinds=["jsonl"],
                tags="a, b",
            ),
        )
    assert response.status_code == 302
    run = ExportRun.objects.get()
    assert (run.format, run.aggregation) == ("hh", "majority")
    assert run.filters == {"exclude_gold": True, "tags": ["a", "b"]}
    assert run.options["files"] == ["jsonl"] and run.options["gzip"] is True


def test_bad_name_re_renders_with_the_error(researcher):
    response = client_for(researcher).post("/export/", form_data(name="bad name!"))
    assert response.status_code == 400
    assert "is not allowed" in response.content.decode()
    assert ExportRun.objects.count() == 0


def test_failed_runs_show_their_error_and_no_link(admin_user, researcher, export_data):
    assignment = export_data.judgments["b_better"].assignment
    assignment.shown_order = []
    assignment.save()
    run = ExportRun.objects.create(created_by=researcher, name="broken")
    export_run_execute(export_run=run)
    html = client_for(admin_user).get("/export/").content.decode()
    assert "Failed" in html
    assert f"judgment {export_data.judgments['b_better'].pk}" in html
    assert f"/api/v1/exports/{run.pk}/download/" not in html


def test_model_text_in_errors_is_escaped(researcher):
    ExportRun.objects.create(
        created_by=researcher, status=ExportRun.Status.FAILED, error="<script>x</script>"
    )
    html = client_for(researcher).get("/export/").content.decode()
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;" in html


def test_admin_lists_runs_read_only(admin_user, researcher):
    run = ExportRun.objects.create(created_by=researcher, name="in-admin")
    client = client_for(admin_user)
    assert client.get("/admin/export/exportrun/").status_code == 200
    assert client.get(f"/admin/export/exportrun/{run.pk}/change/").status_code == 200
    assert client.get("/admin/export/exportrun/add/").status_code == 403
    response = client.post(f"/admin/export/exportrun/{run.pk}/change/", {"name": "renamed"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.name == "in-admin"


def test_the_runs_table_refreshes_itself_while_a_run_is_queued_or_running(researcher, rater):
    queued = ExportRun.objects.create(created_by=researcher, name="waiting")
    client = client_for(researcher)
    html = client.get("/export/").content.decode()
    assert 'data-active="1"' in html and 'data-refresh="/export/?fragment=runs"' in html
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html  # without scripts
    assert f'<tr id="run-{queued.pk}" data-status="queued"' in html

    fragment = client.get(f"/export/?fragment=runs&run={queued.pk}").content.decode()
    assert fragment.startswith('<section id="runs"') and 'id="export-form"' not in fragment
    assert 'class="current" aria-current="true"' in fragment
    assert f'data-refresh="/export/?fragment=runs&amp;run={queued.pk}"' in fragment

    ExportRun.objects.filter(pk=queued.pk).update(status=ExportRun.Status.SUCCEEDED)
    assert 'data-active="0"' in client.get("/export/?fragment=runs").content.decode()
    html = client.get("/export/").content.decode()
    assert 'data-active="0"' in html and "http-equiv" not in html
    assert client_for(rater).get("/export/?fragment=runs").status_code == 403


def test_errors_are_summed_up_at_the_top_with_links_to_the_fields(researcher):
    client = client_for(researcher)
    response = client.post("/export/", form_data(min_agreement="7", test_fraction="0.9"))
    assert response.status_code == 400
    html = response.content.decode()
    summary = html.split('class="error-summary"')[1].split("</div>")[0]
    assert "2 problems to fix" in summary
    assert 'href="#id_min_agreement"' in summary and 'href="#id_test_fraction"' in summary
    assert "data-focus-on-load" in summary
    # The service's own error lands on the field it names, described by its help text and error.
    named = client.post("/export/", form_data(name="bad name!")).content.decode()
    assert 'href="#id_name"' in named
    assert 'aria-invalid="true" aria-describedby="id_name_helptext id_name_error"' in named
    assert 'id="id_name_helptext"' in named and 'id="id_name_error"' in named
