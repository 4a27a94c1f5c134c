"""Every line of an import is refused, naming its line and field, when a value holds a control
character (other than tab and line breaks) or an unpaired surrogate, or nests deeper than 32
levels; nothing is written. The same on SQLite and PostgreSQL (which cannot store NUL at all)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from comparisons.importing import ImportFailed
from comparisons.models import Candidate, Prompt
from comparisons.services import candidates_import, prompts_import
from comparisons.textchecks import MAX_DEPTH
from tests.factories import PromptFactory

from .helpers import jsonl, user

PROMPTS = "/api/v1/prompts/import/"
CANDIDATES = "/api/v1/candidates/import/"

pytestmark = pytest.mark.django_db


def _nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"messages": user("Hi\u0000there")}, "messages[0].content"),
        ({"prompt": "bell \u0007"}, "prompt"),
        ({"prompt": "ok", "id": "p\u0001"}, "id"),
        ({"prompt": "ok", "tags": ["fine", "t\u001f"]}, "tags[1]"),
        ({"prompt": "ok", "extra": {"k": "\u007f"}}, "extra.k"),
        ({"prompt": "ok", "extra": {"k\u0000": 1}}, "extra.k\\u0000"),
        ({"prompt": "lone \ud800 surrogate"}, "prompt"),
    ],
)
def test_a_control_character_in_a_prompt_line_names_line_and_field(admin_api, row, field):
    body = jsonl({"prompt": "Fine."}, row)
    response = admin_api.post(PROMPTS, data=body, content_type="application/jsonl")

    assert response.status_code == 400, response.json()
    data = response.json()
    assert (data["line"], data["field"]) == (2, field)
    assert "U+" in data["detail"]
    assert not Prompt.objects.exists()


def test_tab_and_line_breaks_are_kept(admin_api):
    body = jsonl({"prompt": "Tab\there,\nnew line,\r\nand CRLF."})
    response = admin_api.post(PROMPTS, data=body, content_type="application/jsonl")

    assert response.status_code == 201
    assert Prompt.objects.get().messages[0]["content"] == "Tab\there,\nnew line,\r\nand CRLF."


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"prompt_id": "q", "text": "NUL \u0000", "generator": "m"}, "text"),
        ({"prompt_id": "q", "text": "ok", "generator": "m\u0000"}, "generator"),
        ({"prompt_id": "q\u0000", "text": "ok", "generator": "m"}, "prompt_id"),
        ({"prompt_id": "q", "text": "ok", "generator": "m", "metadata": {"note": "\u0008"}}, "metadata.note"),
    ],
)
def test_a_control_character_in_a_candidate_line_names_line_and_field(admin_api, row, field):
    PromptFactory.create(external_id="q")
    body = jsonl({"prompt_id": "q", "text": "Fine.", "generator": "m"}, row)
    response = admin_api.post(CANDIDATES, data=body, content_type="application/jsonl")

    assert response.status_code == 400, response.json()
    assert (response.json()["line"], response.json()["field"]) == (2, field)
    assert not Candidate.objects.exists()


def test_a_line_nested_too_deep_is_refused_not_a_500(admin_api):
    too_deep = {"prompt": "ok", "extra": _nested(MAX_DEPTH + 5)}
    body = jsonl({"prompt": "Fine."}, too_deep)
    response = admin_api.post(PROMPTS, data=body, content_type="application/jsonl")

    assert response.status_code == 400
    assert response.json()["line"] == 2
    assert response.json()["field"].startswith("extra[0][0]")
    assert "nested deeper than 32 levels" in response.json()["detail"]
    assert not Prompt.objects.exists()


def test_a_line_nested_past_the_json_readers_stack_is_refused(admin_api):
    body = b'{"prompt": "ok"}\n{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    response = admin_api.post(PROMPTS, data=body, content_type="application/jsonl")

    assert response.status_code == 400
    assert response.json()["line"] == 2
    assert "nested deeper than 32 levels" in response.json()["detail"]


def test_nesting_up_to_the_limit_is_read():
    line = {"prompt": "ok", "extra": _nested(MAX_DEPTH - 1)}
    result = prompts_import(stream=[jsonl(line)])
    assert result.created == 1


def test_nan_and_infinity_are_not_json():
    PromptFactory.create(external_id="q")
    body = b'{"prompt_id": "q", "text": "t", "generator": "m", "metadata": {"x": NaN}}\n'

    with pytest.raises(ImportFailed) as caught:
        candidates_import(stream=[body])

    assert "NaN is not valid JSON" in caught.value.message


def test_every_bad_line_is_reported_together():
    body = jsonl(
        {"prompt": "a\u0000"},
        {"prompt": "fine"},
        {"prompt": "b", "tags": ["\u0002"]},
        {"prompt": "c", "x": _nested(40)},
    )
    with pytest.raises(ImportFailed) as caught:
        prompts_import(stream=[body])

    assert [(e.line, e.field) for e in caught.value.errors][:2] == [(1, "prompt"), (3, "tags[0]")]
    assert caught.value.error_count == 3
    assert not Prompt.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"collection": "c\u0000"}, "collection"), ({"tags": "ok,t\u0001"}, "tags[1]")],
)
def test_control_characters_in_the_options_are_refused(admin_api, fields, field):
    upload = SimpleUploadedFile("p.jsonl", jsonl({"prompt": "x"}))
    response = admin_api.post(PROMPTS, {"file": upload, **fields}, format="multipart")

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Prompt.objects.exists()


def test_the_escape_fast_path_still_sees_escaped_control_characters():
    """A raw line without any backslash escape cannot hold a control character (JSON refuses them
    raw); with one, the parsed value is walked: both \\u0000 and \\b are found."""
    for text in ('"a\\u0000"', '"a\\bb"', '"a\\fb"'):
        line = ('{"prompt": ' + text + "}\n").encode()
        with pytest.raises(ImportFailed) as caught:
            prompts_import(stream=[line])
        assert caught.value.field == "prompt", text
    assert json.loads('"a\\bb"') == "a\bb"
