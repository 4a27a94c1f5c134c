from __future__ import annotations

import json

import pytest

from comparisons import importing
from comparisons.importing import ImportFailed, InvalidField
from comparisons.models import Prompt
from comparisons.services import prompt_get_or_create, prompts_import
from tests.factories import PromptFactory

from .helpers import jsonl, user

pytestmark = pytest.mark.django_db


def _fail(body, **kwargs) -> ImportFailed:
    """The import's error, after checking it wrote nothing."""
    before = list(Prompt.objects.values_list("id", "external_id", "tags"))
    with pytest.raises(ImportFailed) as caught:
        prompts_import(stream=[body], **kwargs)
    assert list(Prompt.objects.values_list("id", "external_id", "tags")) == before
    return caught.value


@pytest.mark.parametrize(
    ("messages", "field", "reason"),
    [
        ("hello", "messages", "must be a non-empty list"),
        ([], "messages", "must be a non-empty list"),
        (["hi"], "messages[0]", "must be an object"),
        ([{"content": "hi"}], "messages[0].role", "must be one of system, user, assistant (missing)"),
        ([{"role": "user", "content": ""}], "messages[0].content", "must be a non-empty string"),
        ([{"role": "user", "content": "  "}], "messages[0].content", "must be a non-empty string"),
        ([{"role": "user", "content": 3}], "messages[0].content", "must be a non-empty string"),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "system", "content": "b"},
                {"role": "user", "content": "c"},
            ],
            "messages[1].role",
            "a system message may only come first",
        ),
        (
            [
                {"role": "system", "content": "a"},
                {"role": "system", "content": "b"},
                {"role": "user", "content": "c"},
            ],
            "messages[1].role",
            "a system message may only come first",
        ),
        (
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "messages[1].role",
            "the last message must be from the user",
        ),
        ([{"role": "system", "content": "a"}], "messages[0].role", "the last message must be from the user"),
    ],
)
def test_prompt_get_or_create_validates_messages(messages, field, reason):
    with pytest.raises(InvalidField) as caught:
        prompt_get_or_create(messages=messages)

    assert caught.value.field == field
    assert reason in caught.value.message
    assert caught.value.message.startswith(f"{field}: ")
    assert Prompt.objects.count() == 0


def test_prompt_get_or_create_dedups_and_merges():
    prompt, created = prompt_get_or_create(messages=user("Hi?"), tags=["a"], source=Prompt.Source.REDTEAM)
    same, created_again = prompt_get_or_create(
        messages=[{"role": "user", "content": "Hi?", "name": "ignored"}], external_id="ext", tags=["b", "a"]
    )

    assert created and not created_again
    assert same.pk == prompt.pk
    same.refresh_from_db()
    assert (same.tags, same.external_id, same.source) == (["a", "b"], "ext", Prompt.Source.REDTEAM)
    assert same.messages == user("Hi?")


def test_external_id_naming_other_messages_is_refused():
    PromptFactory.create(external_id="x", messages=user("One"))

    with pytest.raises(InvalidField) as caught:
        prompt_get_or_create(messages=user("Two"), external_id="x")
    assert caught.value.field == "id"

    error = _fail(jsonl({"id": "y", "messages": user("A")}, {"id": "y", "messages": user("B")}))
    assert (error.line, error.field) == (2, "id")
    # A bad line after good ones leaves the existing prompt's tags alone too.
    error = _fail(jsonl({"id": "x", "messages": user("One"), "tags": ["new"]}, {"prompt": ""}))
    assert error.line == 2


def test_same_conversation_twice_in_one_file_is_one_prompt():
    result = prompts_import(stream=[jsonl({"id": "a", "prompt": "Same"}, {"id": "b", "prompt": "Same"})])

    assert (result.created, result.existing) == (1, 1)
    assert result.prompts[0].pk == result.prompts[1].pk
    # The prompt keeps the first id; the second line's id is reported through prompt_ids only.
    assert Prompt.objects.get().external_id == "a"


def test_lines_split_across_chunks_crlf_and_bom():
    body = "\ufeff".encode() + jsonl({"prompt": "héllo wörld"}, {"prompt": "two"}).replace(b"\n", b"\r\n")
    chunks = [body[i : i + 3] for i in range(0, len(body), 3)]
    result = prompts_import(stream=chunks)

    assert [p.messages[0]["content"] for p in result.prompts] == ["héllo wörld", "two"]


def test_text_chunks_are_accepted():
    result = prompts_import(stream=[json.dumps({"prompt": "a"}) + "\n", json.dumps({"prompt": "b"})])

    assert result.created == 2


def test_not_utf8_names_the_line():
    error = _fail(jsonl({"prompt": "ok"}) + b'{"prompt": "\xff"}\n')

    assert error.line == 2
    assert "not valid UTF-8" in error.message


def test_non_object_line():
    error = _fail(jsonl({"prompt": "ok"}, [1, 2]))

    assert (error.line, error.field) == (2, None)
    assert error.message == "line 2: each line must be a JSON object"


def test_file_over_the_size_limit(monkeypatch):
    monkeypatch.setattr(importing, "MAX_FILE_BYTES", 100)
    error = _fail(jsonl(*[{"prompt": f"prompt {i}"} for i in range(10)]))

    assert (error.line, error.field) == (None, "file")
    assert "larger than the 100 bytes limit" in error.message


def test_line_over_the_size_limit(monkeypatch):
    monkeypatch.setattr(importing, "MAX_LINE_BYTES", 50)
    error = _fail(jsonl({"prompt": "short"}, {"prompt": "x" * 60}, {"prompt": "short too"}))

    assert error.line == 2
    assert "longer than the 50 bytes line limit" in error.message


def test_unterminated_long_last_line(monkeypatch):
    monkeypatch.setattr(importing, "MAX_LINE_BYTES", 50)
    error = _fail(jsonl({"prompt": "short"}) + b'{"prompt": "' + b"y" * 80)

    assert error.line == 2


def test_errors_are_capped_but_counted():
    rows = [{"prompt": ""} for _ in range(25)]
    error = _fail(jsonl({"prompt": "fine"}, *rows))

    assert error.error_count == 25
    assert len(error.errors) == importing.MAX_REPORTED_ERRORS
    assert [e.line for e in error.errors] == list(range(2, 22))
    assert error.message == "line 2: prompt: must be a non-empty string (and 24 more errors)"


def test_empty_file_is_refused():
    error = _fail(b"\n  \n")

    assert error.field == "file"


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"id": "", "prompt": "x"}, "id"),
        ({"id": 1.5, "prompt": "x"}, "id"),
        ({"prompt": "x", "tags": "a,b"}, "tags"),
        ({"prompt": "x", "tags": ["a", ""]}, "tags[1]"),
        ({"prompt": "x", "messages": user("y")}, "prompt"),
        ({"text": "x"}, "messages"),
    ],
)
def test_line_fields_are_named(row, field):
    error = _fail(jsonl(row))

    assert (error.line, error.field) == (1, field)


def test_bad_collection_is_refused_before_reading():
    with pytest.raises(InvalidField) as caught:
        prompts_import(stream=[jsonl({"prompt": "x"})], collection="c" * 201)

    assert caught.value.field == "collection"
