"""manage.py export_preferences: same rows as the service, counts on stderr, clear errors."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

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
    assert "5 rows written" in stderr.getvalue()
    assert "1 ties" in stderr.getvalue() and "1 rankings" in stderr.getvalue()


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
