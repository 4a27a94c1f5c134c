"""export_run_execute and its task: status transitions, files on disk, failures that leave nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from export.models import ExportRun
from export.services import export_run_create, export_run_execute
from export.tasks import export_run_task
from labeling.errors import ApplicationError


def run_dir(run: ExportRun) -> Path:
    return Path(settings.PREFLAB_EXPORT_ROOT) / str(run.pk)


@pytest.mark.django_db
def test_execute_writes_file_and_records_it(export_data, researcher):
    run = ExportRun.objects.create(created_by=researcher, name="snap", filters={})
    export_run_execute(export_run=run)
    run.refresh_from_db()
    assert run.status == ExportRun.Status.SUCCEEDED
    assert run.file_path == f"{run.pk}/snap"
    assert run.row_count == 10
    assert [p.name for p in run_dir(run).iterdir()] == ["snap"]
    import hashlib

    for f in run.files:
        assert hashlib.sha256((run_dir(run) / "snap" / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert run.manifest["created_at"] == run.created_at.isoformat().replace("Z", "+00:00")

    # Finished runs are immutable: a second call (or a redelivered task) changes nothing.
    finished_at = run.finished_at
    export_run_execute(export_run=run)
    export_run_task(run.pk)
    run.refresh_from_db()
    assert run.finished_at == finished_at


@pytest.mark.django_db
def test_two_runs_with_same_filters_have_same_sha(export_data, researcher):
    runs = [ExportRun.objects.create(created_by=researcher, filters={}) for _ in range(2)]
    for run in runs:
        export_run_execute(export_run=run)
        run.refresh_from_db()
    assert runs[0].sha256 == runs[1].sha256 != ""
    assert runs[0].files == runs[1].files
    for f in runs[0].files:  # JSONL, Parquet and the card: byte for byte
        assert (run_dir(runs[0]) / "preferences" / f["path"]).read_bytes() == (
            run_dir(runs[1]) / "preferences" / f["path"]
        ).read_bytes()


@pytest.mark.django_db
def test_bad_data_fails_the_run_with_a_readable_error_and_no_file(export_data, researcher):
    judgment = export_data.judgments["multi_turn"]
    assignment = judgment.assignment
    assignment.shown_order = [assignment.shown_order[0]]
    assignment.save()
    run = ExportRun.objects.create(created_by=researcher, filters={})
    export_run_execute(export_run=run)
    run.refresh_from_db()
    assert run.status == ExportRun.Status.FAILED
    assert f"judgment {judgment.pk}" in run.error
    assert run.finished_at is not None
    assert run.sha256 == "" and run.file_path == "" and run.row_count == 0 and run.files == []
    assert list(run_dir(run).iterdir()) == []


@pytest.mark.django_db
def test_queue_deleted_after_creation_fails_the_run(
    export_data, researcher, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = export_run_create(created_by=researcher, filters={"queues": [export_data.other_queue.pk]})
    assert run.status == ExportRun.Status.QUEUED
    queue_id = export_data.other_queue.pk
    export_data.other_queue.delete()
    for callback in callbacks:
        callback()
    run.refresh_from_db()
    assert run.status == ExportRun.Status.FAILED
    assert str(queue_id) in run.error


@pytest.mark.django_db
def test_a_run_left_running_by_a_dead_worker_is_written_again(export_data, researcher):
    run = ExportRun.objects.create(created_by=researcher, status=ExportRun.Status.RUNNING)
    run_dir(run).mkdir(parents=True)
    (run_dir(run) / ".preferences.abc.part").mkdir()
    (run_dir(run) / ".preferences.abc.part" / "half.jsonl").write_bytes(b"half a ro")
    export_run_task(run.pk)
    run.refresh_from_db()
    assert run.status == ExportRun.Status.SUCCEEDED
    assert run.row_count == 10
    assert [p.name for p in run_dir(run).iterdir()] == ["preferences"]


@pytest.mark.django_db
def test_task_ignores_missing_run():
    """A task for a run that does not exist (deleted, or never committed) returns quietly: no
    error for Celery to retry, no run created and nothing written under the export root."""
    root = Path(settings.PREFLAB_EXPORT_ROOT)
    assert export_run_task(123456789) is None
    assert ExportRun.objects.count() == 0
    assert not root.exists() or list(root.iterdir()) == []


@pytest.mark.django_db
def test_raters_cannot_create_runs_through_the_service(rater):
    with pytest.raises(ApplicationError) as excinfo:
        export_run_create(created_by=rater)
    assert excinfo.value.status_code == 403
    assert ExportRun.objects.count() == 0
