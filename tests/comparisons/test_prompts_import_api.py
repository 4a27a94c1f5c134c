from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from comparisons import importing
from comparisons.models import Prompt, messages_hash

from .helpers import jsonl, user

URL = "/api/v1/prompts/import/"

pytestmark = pytest.mark.django_db


def _upload(client, body: bytes, **fields):
    return client.post(URL, {"file": SimpleUploadedFile("prompts.jsonl", body), **fields}, format="multipart")


def test_multipart_upload_creates_prompts(admin_api):
    body = jsonl(
        {"id": "p1", "messages": user("What is RLHF?"), "tags": ["ml"]},
        {"messages": user("Name a prime.")},
        {"prompt": "Plain text prompt"},
    )
    response = _upload(admin_api, body, collection="batch-1", tags="seed, en", source="demo")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["created"] == 3 and data["existing"] == 0
    prompts = [Prompt.objects.get(pk=pk) for pk in data["prompt_ids"]]
    assert [p.external_id for p in prompts] == ["p1", None, None]
    assert prompts[0].messages == user("What is RLHF?")
    assert prompts[0].tags == ["seed", "en", "ml"]
    assert prompts[1].tags == ["seed", "en"]
    assert prompts[2].messages == user("Plain text prompt")
    assert {p.collection for p in prompts} == {"batch-1"}
    assert {p.source for p in prompts} == {"demo"}
    assert prompts[0].content_hash == messages_hash(user("What is RLHF?"))


@pytest.mark.parametrize("content_type", ["application/jsonl", "application/x-ndjson", "text/plain"])
def test_raw_body_upload_with_query_params(admin_api, content_type):
    body = b"\n" + jsonl({"id": 7, "messages": user("Hello?")}) + b"\n\n"
    response = admin_api.post(f"{URL}?collection=raw&tags=a,b", data=body, content_type=content_type)

    assert response.status_code == 201, response.json()
    assert response.json()["created"] == 1
    prompt = Prompt.objects.get()
    assert (prompt.external_id, prompt.collection, prompt.tags) == ("7", "raw", ["a", "b"])


def test_multi_turn_prompt_keeps_every_turn(admin_api):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Tell me a joke."},
    ]
    response = admin_api.post(URL, data=jsonl({"messages": messages}), content_type="application/jsonl")

    assert response.status_code == 201
    assert Prompt.objects.get().messages == messages


def test_reimport_creates_nothing_and_merges_tags(admin_api):
    first = jsonl({"id": "a", "messages": user("One?"), "tags": ["x"]}, {"messages": user("Two?")})
    ids = admin_api.post(URL, data=first, content_type="application/jsonl").json()["prompt_ids"]

    again = jsonl(
        {"id": "a", "messages": user("One?"), "tags": ["y"]}, {"messages": user("Two?"), "tags": ["z"]}
    )
    response = admin_api.post(URL, data=again, content_type="application/jsonl")

    assert response.status_code == 201
    assert response.json() == {"created": 0, "existing": 2, "prompt_ids": ids}
    assert Prompt.objects.count() == 2
    assert Prompt.objects.get(external_id="a").tags == ["x", "y"]
    assert Prompt.objects.get(pk=ids[1]).tags == ["z"]


def test_bad_line_rejects_the_whole_file(admin_api):
    body = jsonl(
        {"messages": user("Fine.")},
        {"messages": user("Also fine.")},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "?"}]},
        {"messages": []},
    )
    response = admin_api.post(URL, data=body, content_type="application/jsonl")

    assert response.status_code == 400
    data = response.json()
    assert data["line"] == 3
    assert data["field"] == "messages[1].role"
    assert data["detail"].startswith("line 3: messages[1].role: must be one of system, user, assistant")
    assert "1 more error" in data["detail"]
    assert [(e["line"], e["field"]) for e in data["errors"]] == [(3, "messages[1].role"), (4, "messages")]
    assert data["error_count"] == 2
    assert Prompt.objects.count() == 0


def test_invalid_json_names_the_line(admin_api):
    body = jsonl({"messages": user("Fine.")}, '{"messages": [')
    response = admin_api.post(URL, data=body, content_type="application/jsonl")

    assert response.status_code == 400
    assert response.json()["line"] == 2
    assert response.json()["detail"].startswith("line 2: invalid JSON (")
    assert Prompt.objects.count() == 0


def test_missing_file_is_a_clear_error(admin_api):
    response = admin_api.post(URL, {"collection": "x"}, format="multipart")

    assert response.status_code == 400
    assert response.json()["field"] == "file"


def test_bad_source_param_names_the_field(admin_api):
    response = admin_api.post(
        f"{URL}?source=nope", data=jsonl({"prompt": "x"}), content_type="application/jsonl"
    )

    assert response.status_code == 400
    assert response.json()["field"] == "source"
    assert Prompt.objects.count() == 0


def test_unsupported_media_type(admin_api):
    response = admin_api.post(URL, data=b"<xml/>", content_type="application/xml")

    assert response.status_code == 415


@pytest.mark.parametrize("who", ["rater_api", "researcher_api"])
def test_only_admins_may_import(request, who):
    client = request.getfixturevalue(who)
    response = client.post(URL, data=jsonl({"prompt": "x"}), content_type="application/jsonl")

    assert response.status_code == 403
    assert Prompt.objects.count() == 0


def test_anonymous_is_refused(api):
    response = api.post(URL, data=jsonl({"prompt": "x"}), content_type="application/jsonl")

    # TokenAuthentication comes first, so DRF answers "not authenticated" with 401 and a challenge.
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert Prompt.objects.count() == 0


def test_raw_body_larger_than_djangos_in_memory_limit(admin_api, settings):
    """The body is streamed, so DATA_UPLOAD_MAX_MEMORY_SIZE does not cap imports; our own limits do."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = jsonl(*[{"prompt": f"{i} " + "x" * 600} for i in range(5)])
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = admin_api.post(URL, data=body, content_type="application/jsonl")

    assert response.status_code == 201, response.json()
    assert response.json()["created"] == 5


def test_file_over_the_limit_is_refused(admin_api, monkeypatch):
    monkeypatch.setattr(importing, "MAX_FILE_BYTES", 1000)
    body = jsonl(*[{"prompt": f"{i} " + "x" * 600} for i in range(5)])
    response = _upload(admin_api, body)

    assert response.status_code == 400
    assert response.json()["field"] == "file"
    assert "larger than" in response.json()["detail"]
    assert Prompt.objects.count() == 0
