"""``/manage/import/``: admins upload prompts and responses (JSONL), all or nothing."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from comparisons.models import Candidate, Prompt

pytestmark = pytest.mark.django_db

URL = "/manage/import/"


def _fields(kind: str, **values: object) -> dict[str, object]:
    """The page's form fields for one upload (each form's fields carry its prefix)."""
    return {"kind": kind, **{f"{kind}-{key}": value for key, value in values.items()}}


def _jsonl(name: str, *lines: object) -> SimpleUploadedFile:
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    return SimpleUploadedFile(name, body.encode(), content_type="application/jsonl")


def test_admin_imports_prompts_then_responses(client, admin_user):
    client.force_login(admin_user)
    assert 'id="prompts-form"' in client.get(URL).content.decode()
    prompts = _jsonl(
        "prompts.jsonl",
        {"id": "p-1", "messages": [{"role": "user", "content": "Name a prime."}], "tags": ["math"]},
        {"prompt": "Say hello."},
    )

    response = client.post(
        URL,
        _fields("prompts", file=prompts, collection="evals", tags="batch-1", source="import"),
    )

    assert response.status_code == 302
    assert client.get(URL).content.decode().count("prompts.jsonl: 2 new prompts, 0 already there.") == 1
    assert sorted(p.collection for p in Prompt.objects.all()) == ["evals", "evals"]
    assert sorted(Prompt.objects.get(external_id="p-1").tags) == ["batch-1", "math"]

    again = _jsonl("prompts.jsonl", {"prompt": "Say hello."})
    client.post(URL, _fields("prompts", file=again, source="import"))
    assert "prompts.jsonl: 0 new prompts, 1 already there." in client.get(URL).content.decode()

    responses = _jsonl(
        "responses.jsonl",
        {"prompt_id": "p-1", "text": "2", "generator": "gpt-x"},
        {"prompt_id": "p-1", "text": "Seven.", "generator": "gpt-x"},
    )
    assert client.post(URL, _fields("candidates", file=responses)).status_code == 302
    assert "responses.jsonl: 2 new responses, 0 already there." in client.get(URL).content.decode()
    assert Candidate.objects.filter(prompt__external_id="p-1", generator__name="gpt-x").count() == 2


def test_a_bad_file_lists_its_bad_lines_and_writes_nothing(client, admin_user):
    client.force_login(admin_user)
    bad = _jsonl(
        "prompts.jsonl",
        {"prompt": "Fine."},
        "{not json",
        {"messages": []},
    )

    response = client.post(URL, _fields("prompts", file=bad, source="import"))

    assert response.status_code == 400
    html = response.content.decode()
    assert "prompts.jsonl was not imported" in html
    assert "line 2" in html and "(and 1 more error)" in html
    assert "<td>2</td>" in html and "<td>3</td>" in html and "<td>messages</td>" in html
    assert not Prompt.objects.exists()


def test_responses_for_unknown_prompts_are_refused(client, admin_user):
    client.force_login(admin_user)
    bad = _jsonl("responses.jsonl", {"prompt_id": "nope", "text": "Hi", "generator": "m"})
    response = client.post(URL, _fields("candidates", file=bad))
    assert response.status_code == 400
    assert "responses.jsonl was not imported" in response.content.decode()
    assert "nope" in response.content.decode()
    assert not Candidate.objects.exists()


def test_a_missing_file_is_named(client, admin_user):
    client.force_login(admin_user)
    response = client.post(URL, _fields("prompts", source="import"))
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_only_admins_import(client, researcher, rater):
    for user in (researcher, rater):
        client.force_login(user)
        assert client.get(URL).status_code == 403
    client.logout()
    assert client.get(URL).status_code == 302  # to the login page


def test_a_preference_dataset_and_a_csv_with_columns_through_the_page(client, admin_user):
    client.force_login(admin_user)
    page = client.get(URL).content.decode()
    assert 'id="preferences-form"' in page and 'name="prompts-columns"' in page

    hh = _jsonl(
        "hh-sample.jsonl",
        {
            "chosen": "\n\nHuman: Hi?\n\nAssistant: Hello.",
            "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away.",
        },
    )
    response = client.post(URL, _fields("preferences", file=hh, source="import", collection="hh"))
    assert response.status_code == 302
    assert "hh-sample.jsonl: 1 new preference pairs, 0 already there." in client.get(URL).content.decode()
    assert Prompt.objects.get().collection == "hh"

    csv_file = SimpleUploadedFile("q.csv", b"question\nWhy?\n", content_type="text/csv")
    response = client.post(URL, _fields("prompts", file=csv_file, columns="prompt=question", source="import"))
    assert response.status_code == 302
    assert Prompt.objects.filter(messages=[{"role": "user", "content": "Why?"}]).exists()


def test_a_bad_option_is_shown_on_its_field(client, admin_user):
    client.force_login(admin_user)
    body = _jsonl("p.jsonl", {"prompt": "x"})
    response = client.post(URL, _fields("prompts", file=body, columns="answer=text", source="import"))

    assert response.status_code == 400
    assert "not a field of prompts imports" in response.content.decode()
    assert not Prompt.objects.exists()


def test_a_bad_dataset_row_is_listed_with_its_column(client, admin_user):
    client.force_login(admin_user)
    bad = SimpleUploadedFile("p.csv", b"q,good,bad\nQ?,,Fine.\nR?,Yes.,\n", content_type="text/csv")
    response = client.post(
        URL, _fields("preferences", file=bad, columns="prompt=q,chosen=good,rejected=bad", source="import")
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert "p.csv was not imported" in html
    assert "<td>good</td>" in html and "<td>bad</td>" in html
    assert not Prompt.objects.exists()
