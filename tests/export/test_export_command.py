"""manage.py export_preferences: same rows as the service, counts on stderr, clear errors."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from export.models import ExportRun
from export.services import export_preferences_write


def expected(**filters) -> bytes:
    out = io.BytesIO()
    export_preferences_write(out=out, filters=filters, name="cmd")
    return out.getvalue()


@pytest.mark.django_db
def test_writes_the_same_rows_to_a_file(export_data, tmp_path):
    target = tmp_path / "sub" / "prefs.jsonl"
    stderr = io.StringIO()
    call_command("export_preferences", "--out", str(target), "--name", "cmd", stderr=stderr)
    assert target.read_bytes() == expected()
    assert "10 rows written" in stderr.getvalue()
    assert "2 ties" in stderr.getvalue()


@pytest.mark.django_db
def test_writes_to_stdout_by_default_with_filters(export_data, capsysbinary):
    queue_id = export_data.other_queue.pk
    call_command("export_preferences", "--queue", str(queue_id), "--name", "cmd", stderr=io.StringIO())
    captured = capsysbinary.readouterr()
    assert captured.out == expected(queues=[queue_id])
    assert captured.out.count(b"\n") == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--queue", "424242"], "--queue"),
        (["--since", "soon"], "--since"),
        (["--since", "2024-02-01", "--until", "2024-01-01"], "--until"),
        (["--name", "no spaces please"], "--name"),
    ],
)
@pytest.mark.django_db
def test_bad_input_is_a_clear_command_error(tmp_path, args, words):
    target = tmp_path / "x.jsonl"
    with pytest.raises(CommandError, match=words):
        call_command("export_preferences", "--out", str(target), *args)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_unwritable_out_is_a_command_error(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(CommandError, match="--out"):
        call_command("export_preferences", "--out", str(tmp_path / "a-file" / "x.jsonl"))


@pytest.mark.django_db
def test_export_command_writes_a_snapshot_folder(export_data, tmp_path):
    out = io.StringIO()
    call_command(
        "export",
        "--format",
        "native",
        "--out",
        str(tmp_path / "snap"),
        "--name",
        "cmd",
        "--gzip",
        "--exclude-flagged",
        stdout=out,
    )
    manifest = json.loads(out.getvalue())
    assert manifest["format"] == "native"
    assert manifest["filters"] == {"exclude_flagged": True}
    assert manifest["rows"] == 6  # 7 judgments, b_better's comparison was flagged
    assert (tmp_path / "snap" / "README.md").is_file()
    assert (tmp_path / "snap" / "data" / "train.jsonl.gz").is_file()


@pytest.mark.django_db
def test_export_command_records_a_run(export_data, researcher):
    out = io.StringIO()
    call_command("export", "--user", researcher.username, "--format", "rankings", "--pairs", stdout=out)
    manifest = json.loads(out.getvalue())
    run = ExportRun.objects.get(pk=manifest["export_run"])
    assert run.status == ExportRun.Status.SUCCEEDED and run.row_count == 5
    assert run.created_by == researcher


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--queue", "424242"], "--queue"),
        (["--min-agreement", "3"], "--min-agreement"),
        (["--files", "csv"], "--files"),
        (["--aggregation", "median"], "--aggregation"),
        (["--standard", "--format", "hh"], "--standard"),
    ],
)
@pytest.mark.django_db
def test_export_command_names_the_bad_option(tmp_path, args, words):
    with pytest.raises(CommandError, match=words):
        call_command("export", "--out", str(tmp_path / "x"), *args)
    assert list(tmp_path.iterdir()) == []
