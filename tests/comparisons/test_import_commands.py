from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from comparisons.models import Candidate, Prompt

from .helpers import jsonl, user

pytestmark = pytest.mark.django_db


def test_import_prompts_then_candidates(tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes(jsonl({"id": "p1", "messages": user("Q1?")}, {"id": "p2", "messages": user("Q2?")}))
    candidates = tmp_path / "candidates.jsonl"
    candidates.write_bytes(
        jsonl(
            {"prompt_id": "p1", "text": "A1", "generator": "m"},
            {"prompt_id": "p2", "text": "A2", "generator": "m"},
        )
    )

    call_command("import_prompts", str(prompts), "--collection", "cli", "--tags", "a,b")
    call_command("import_candidates", str(candidates))
    call_command("import_candidates", str(candidates))

    out = capsys.readouterr().out
    assert "2 prompts created, 0 already present." in out
    assert "0 candidates created, 2 already present." in out
    assert set(Prompt.objects.values_list("collection", flat=True)) == {"cli"}
    assert Prompt.objects.get(external_id="p1").tags == ["a", "b"]
    assert Candidate.objects.count() == 2


def test_bad_file_raises_command_error_with_line_and_field(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(jsonl({"prompt": "ok"}, {"messages": [{"role": "user", "content": ""}]}, "{oops"))

    with pytest.raises(CommandError) as caught:
        call_command("import_prompts", str(path))

    message = str(caught.value)
    assert "line 2: messages[0].content: must be a non-empty string" in message
    assert "line 3: invalid JSON" in message
    assert Prompt.objects.count() == 0


def test_unknown_prompt_in_candidates_file(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(jsonl({"prompt_id": "missing", "text": "A", "generator": "m"}))

    with pytest.raises(CommandError, match='line 1: prompt_id: no prompt has the id "missing"'):
        call_command("import_candidates", str(path))


def test_missing_file_and_bad_tags(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_prompts", str(tmp_path / "nope.jsonl"))
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl({"prompt": "x"}))
    with pytest.raises(CommandError, match="tags"):
        call_command("import_prompts", str(path), "--tags", "x" * 101)
