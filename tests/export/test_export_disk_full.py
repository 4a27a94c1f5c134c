"""A full export disk: the run fails naming the disk, leaves nothing behind, and a new run of the
same export succeeds once there is room. (``scripts/fault_export_disk_full.sh`` does the same with a
real tmpfs too small for the files.)"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from django.conf import settings

from export.models import ExportRun
from export.services import export_run_execute
from export.services import snapshot as snapshot_module


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.django_db
def test_a_full_disk_fails_the_run_with_the_reason_and_leaves_no_partial_files(
    export_data, researcher, monkeypatch
):
    real_write = snapshot_module._write_snapshot

    def write_then_disk_full(spec, folder, on_progress):
        real_write(spec, folder, on_progress)  # the files are (partly) there when the disk fills
        assert _files(folder)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(snapshot_module, "_write_snapshot", write_then_disk_full)
    run = ExportRun.objects.create(created_by=researcher, name="full", filters={})
    export_run_execute(export_run=run)
    run.refresh_from_db()
    assert run.status == ExportRun.Status.FAILED
    assert "export disk (PREFLAB_EXPORT_ROOT) is full" in run.error
    assert "No space left on device" in run.error
    assert (run.file_path, run.files, run.row_count) == ("", [], 0)
    assert _files(Path(settings.PREFLAB_EXPORT_ROOT) / str(run.pk)) == []

    monkeypatch.setattr(snapshot_module, "_write_snapshot", real_write)  # space freed
    again = ExportRun.objects.create(created_by=researcher, name="full", filters={})
    export_run_execute(export_run=again)
    again.refresh_from_db()
    assert again.status == ExportRun.Status.SUCCEEDED, again.error
    assert again.row_count == 10 and again.files


@pytest.mark.django_db
def test_another_os_error_keeps_its_own_message(export_data, researcher, monkeypatch):
    def denied(spec, folder, on_progress):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(snapshot_module, "_write_snapshot", denied)
    run = ExportRun.objects.create(created_by=researcher, name="denied", filters={})
    export_run_execute(export_run=run)
    run.refresh_from_db()
    assert run.status == ExportRun.Status.FAILED
    assert run.error == "[Errno 13] Permission denied"
