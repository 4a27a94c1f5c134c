"""Imports report every error of a file in one pass: bad lines and the database checks of the lines
that parsed (unknown prompt_id, an id naming other messages, a taken sample_index) together, with
values written as a user writes them, and nothing written."""

from __future__ import annotations

import pytest

from comparisons import import_errors
from comparisons.importing import ErrorCollector, ImportFailed, LineError, shown_value, shown_values
from comparisons.models import Candidate, Prompt
from comparisons.services import candidates_import, prompts_import
from model_runner.models import Generator
from tests.factories import CandidateFactory, GeneratorFactory, PromptFactory

from .helpers import jsonl, user

pytestmark = pytest.mark.django_db


def _rows():
    return (
        list(Prompt.objects.values_list("id", "external_id", "tags")),
        list(Candidate.objects.values_list("id")),
        list(Generator.objects.values_list("id")),
    )


def test_candidates_api_reports_a_bad_json_line_and_an_unknown_prompt_id_together(admin_api):
    PromptFactory.create(external_id="q")
    before = _rows()
    body = jsonl(
        {"messages": user("Would be created."), "text": "A.", "generator": "new-model"},
        '{"prompt_id": "q", "text": ',
        {"prompt_id": "nope", "text": "Orphan.", "generator": "new-model"},
    )

    response = admin_api.post("/api/v1/candidates/import/", data=body, content_type="application/jsonl")

    assert response.status_code == 400
    data = response.json()
    assert data["error_count"] == 2
    assert [(e["line"], e["field"]) for e in data["errors"]] == [(2, None), (3, "prompt_id")]
    assert data["errors"][1]["message"] == 'no prompt has the id "nope"'
    assert data["detail"].startswith("line 2: invalid JSON") and data["detail"].endswith("(and 1 more error)")
    assert _rows() == before


def test_candidates_every_kind_of_error_in_one_report_and_nothing_written():
    prompt = PromptFactory.create(external_id="q")
    CandidateFactory.create(prompt=prompt, generator=GeneratorFactory.create(name="m"), sample_index=0)
    before = _rows()
    body = jsonl(
        {"prompt_id": "q", "text": "Taken slot.", "generator": "m", "sample_index": 0},
        {"prompt_id": "q", "text": ""},
        {"prompt_id": ["x"], "text": "A.", "generator": "m"},
        {"prompt_id": "gone", "text": "B.", "generator": "brand-new"},
        {"messages": user("New prompt?"), "text": "C.", "generator": "brand-new"},
    )

    with pytest.raises(ImportFailed) as caught:
        candidates_import(stream=[body])

    error = caught.value
    assert [(e.line, e.field, e.message) for e in error.errors] == [
        (1, "sample_index", '0 is already used by another response of "m" to this prompt'),
        (2, "text", "must be a non-empty string"),
        (3, "prompt_id", "must be a non-empty string or an integer"),
        (4, "prompt_id", 'no prompt has the id "gone"'),
    ]
    assert error.error_count == 4
    assert _rows() == before  # no prompt, generator or candidate from the good line 5


def test_prompts_api_reports_a_bad_line_and_an_id_conflict_together(admin_api):
    PromptFactory.create(external_id="x", messages=user("One"))
    before = _rows()
    body = jsonl({"id": "x", "messages": user("Two")}, {"prompt": ""}, {"id": "y", "prompt": "Fine."})

    response = admin_api.post("/api/v1/prompts/import/", data=body, content_type="application/jsonl")

    assert response.status_code == 400
    data = response.json()
    assert data["error_count"] == 2
    assert [(e["line"], e["field"]) for e in data["errors"]] == [(1, "id"), (2, "prompt")]
    assert data["errors"][0]["message"].startswith('"x" already names a prompt with other messages (prompt ')
    assert _rows() == before


def test_the_errors_kept_are_the_earliest_lines_whatever_order_they_were_found_in():
    """Over the cap, line 1's database error is kept ahead of later lines' parse errors."""
    body = jsonl(
        {"prompt_id": "gone", "text": "A.", "generator": "m"},
        *[{"prompt_id": "gone", "text": ""} for _ in range(25)],
    )

    with pytest.raises(ImportFailed) as caught:
        candidates_import(stream=[body])

    error = caught.value
    assert error.error_count == 26
    assert [e.line for e in error.errors] == list(range(1, import_errors.MAX_REPORTED_ERRORS + 1))
    assert error.message == 'line 1: prompt_id: no prompt has the id "gone" (and 25 more errors)'


def test_collector_keeps_file_wide_errors_first_and_counts_all(monkeypatch):
    monkeypatch.setattr(import_errors, "MAX_REPORTED_ERRORS", 3)
    errors = ErrorCollector()
    for line in (9, 4, 7, 2):
        errors.add(line, LineError(line, None, f"bad {line}"))
    errors.add(None, LineError(None, "file", "too big"))

    assert [e.line for e in errors.errors] == [None, 2, 4]
    assert errors.count == 5


def test_only_bad_lines_still_report_every_line():
    with pytest.raises(ImportFailed) as caught:
        prompts_import(stream=[jsonl({"prompt": ""}, "not json")])

    assert [e.line for e in caught.value.errors] == [1, 2]


def test_values_are_written_as_a_user_writes_them():
    assert shown_value("bot") == '"bot"'
    assert shown_value("it's") == '"it\'s"'
    assert shown_value(["no-such-tag"]) == '["no-such-tag"]'
    assert shown_value(3) == "3"
    assert shown_value("x" * 50) == '"' + "x" * 36 + "..."
    assert shown_values(["a", "b", 7]) == '"a", "b", 7'
    assert shown_values(range(23), most=20).endswith("19 ... and 3 more")

    with pytest.raises(ImportFailed) as caught:
        prompts_import(stream=[jsonl({"messages": [{"role": "bot", "content": "hi"}]})])
    assert caught.value.errors[0].message == 'must be one of system, user, assistant (got "bot")'
