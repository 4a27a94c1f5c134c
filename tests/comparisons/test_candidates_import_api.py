from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from comparisons.models import Candidate, Prompt
from model_runner.models import Generator
from tests.factories import CandidateFactory, GeneratorFactory, PromptFactory

from .helpers import jsonl, user

URL = "/api/v1/candidates/import/"

pytestmark = pytest.mark.django_db


def _post(client, body: bytes):
    return client.post(URL, data=body, content_type="application/jsonl")


def test_import_by_prompt_id_external_and_pk(admin_api):
    named = PromptFactory.create(external_id="q-1")
    plain = PromptFactory.create()
    body = jsonl(
        {"prompt_id": "q-1", "text": "First answer.", "generator": "gpt-x"},
        {
            "prompt_id": "q-1",
            "text": "Second answer.",
            "generator": "gpt-x",
            "metadata": {"temperature": 0.7},
        },
        {"prompt_id": plain.pk, "text": "By pk.", "generator": "llama"},
        {"prompt_id": str(plain.pk), "text": "By pk as text.", "generator": "llama", "sample_index": 5},
    )
    response = admin_api.post(URL, {"file": SimpleUploadedFile("c.jsonl", body)}, format="multipart")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["created"], data["existing"]) == (4, 0)
    candidates = [Candidate.objects.get(pk=pk) for pk in data["candidate_ids"]]
    assert [(c.prompt_id, c.generator.name, c.sample_index) for c in candidates] == [
        (named.pk, "gpt-x", 0),
        (named.pk, "gpt-x", 1),
        (plain.pk, "llama", 0),
        (plain.pk, "llama", 5),
    ]
    assert candidates[1].sampling == {"temperature": 0.7}
    assert {c.finish_reason for c in candidates} == {Candidate.FinishReason.IMPORTED}
    assert set(Generator.objects.values_list("name", "backend")) == {
        ("gpt-x", Generator.Backend.IMPORTED),
        ("llama", Generator.Backend.IMPORTED),
    }


def test_import_by_messages_creates_or_reuses_the_prompt(admin_api):
    existing = PromptFactory.create(messages=user("Known question?"))
    body = jsonl(
        {"messages": user("Known question?"), "text": "A.", "generator": "m"},
        {"messages": user("New question?"), "text": "B.", "generator": "m"},
        {"messages": user("New question?"), "text": "C.", "generator": "m"},
    )
    response = _post(admin_api, body)

    assert response.status_code == 201, response.json()
    candidates = [Candidate.objects.get(pk=pk) for pk in response.json()["candidate_ids"]]
    assert candidates[0].prompt_id == existing.pk
    assert candidates[1].prompt_id == candidates[2].prompt_id != existing.pk
    assert Prompt.objects.count() == 2
    assert [c.sample_index for c in candidates] == [0, 0, 1]


def test_reimport_does_not_duplicate(admin_api):
    PromptFactory.create(external_id="q")
    body = jsonl(
        {"prompt_id": "q", "text": "Same.", "generator": "m"},
        {"prompt_id": "q", "text": "Other.", "generator": "m"},
    )
    first = _post(admin_api, body).json()
    second = _post(admin_api, body)

    assert second.status_code == 201
    assert second.json() == {"created": 0, "existing": 2, "candidate_ids": first["candidate_ids"]}
    assert Candidate.objects.count() == 2


def test_next_free_index_follows_existing_candidates(admin_api):
    prompt = PromptFactory.create(external_id="q")
    generator = GeneratorFactory.create(name="m")
    CandidateFactory.create(prompt=prompt, generator=generator, sample_index=3, text="Old.")
    response = _post(admin_api, jsonl({"prompt_id": "q", "text": "New.", "generator": "m"}))

    assert response.status_code == 201
    assert Candidate.objects.get(pk=response.json()["candidate_ids"][0]).sample_index == 4


def test_generator_with_another_backend_is_reused(admin_api):
    PromptFactory.create(external_id="q")
    local = GeneratorFactory.create(name="smollm2", backend=Generator.Backend.BUNDLED)
    response = _post(admin_api, jsonl({"prompt_id": "q", "text": "Hi.", "generator": "smollm2"}))

    assert response.status_code == 201
    assert Candidate.objects.get().generator == local
    assert Generator.objects.count() == 1


def test_unknown_prompt_id_names_the_line_and_writes_nothing(admin_api):
    PromptFactory.create(external_id="q")
    body = jsonl(
        {"messages": user("Would be created."), "text": "A.", "generator": "new-model"},
        {"prompt_id": "q", "text": "Fine.", "generator": "new-model"},
        {"prompt_id": "nope", "text": "Orphan.", "generator": "new-model"},
    )
    response = _post(admin_api, body)

    assert response.status_code == 400
    data = response.json()
    assert (data["line"], data["field"]) == (3, "prompt_id")
    assert data["detail"] == 'line 3: prompt_id: no prompt has the id "nope"'
    assert Candidate.objects.count() == 0
    assert Prompt.objects.count() == 1
    assert not Generator.objects.exists()


def test_taken_sample_index_rolls_back_new_prompts_and_generators(admin_api):
    prompt = PromptFactory.create(external_id="q")
    CandidateFactory.create(
        prompt=prompt, generator=GeneratorFactory.create(name="m"), sample_index=0, text="Old."
    )
    body = jsonl(
        {"messages": user("Brand new."), "text": "A.", "generator": "other"},
        {"prompt_id": "q", "text": "Different.", "generator": "m", "sample_index": 0},
    )
    response = _post(admin_api, body)

    assert response.status_code == 400
    assert (response.json()["line"], response.json()["field"]) == (2, "sample_index")
    assert Prompt.objects.count() == 1
    assert Candidate.objects.count() == 1
    assert not Generator.objects.filter(name="other").exists()


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"text": "A.", "generator": "m"}, "prompt_id"),
        ({"prompt_id": "q", "generator": "m"}, "text"),
        ({"prompt_id": "q", "text": "A."}, "generator"),
        ({"prompt_id": "q", "text": "A.", "generator": "m", "sample_index": -1}, "sample_index"),
        ({"prompt_id": "q", "text": "A.", "generator": "m", "metadata": [1]}, "metadata"),
        ({"prompt_id": "q", "messages": user("x"), "text": "A.", "generator": "m"}, "prompt_id"),
        (
            {"messages": [{"role": "assistant", "content": "x"}], "text": "A.", "generator": "m"},
            "messages[0].role",
        ),
    ],
)
def test_bad_fields_are_named(admin_api, row, field):
    PromptFactory.create(external_id="q")
    response = _post(admin_api, jsonl({"prompt_id": "q", "text": "ok", "generator": "m"}, row))

    assert response.status_code == 400
    assert (response.json()["line"], response.json()["field"]) == (2, field)
    assert Candidate.objects.count() == 0


def test_raters_get_403(rater_api):
    PromptFactory.create(external_id="q")
    response = _post(rater_api, jsonl({"prompt_id": "q", "text": "A.", "generator": "m"}))

    assert response.status_code == 403
    assert Candidate.objects.count() == 0
