"""A conversation imported under two ids keeps both: either finds the prompt (a later candidate
import, prompt selection for queues and generation), and exports keep showing the first."""

from __future__ import annotations

import pytest

from comparisons.models import Prompt, PromptExternalId
from comparisons.selectors import prompt_list, prompts_select
from comparisons.services import prompt_get_or_create, prompts_import
from labeling.errors import ApplicationError
from tests.factories import PromptFactory

from .helpers import jsonl, user

pytestmark = pytest.mark.django_db


def test_two_ids_for_the_same_messages_in_one_file_both_name_the_prompt(admin_api):
    body = jsonl({"id": "first", "messages": user("Same?")}, {"id": "second", "messages": user("Same?")})
    response = admin_api.post("/api/v1/prompts/import/", data=body, content_type="application/jsonl")

    assert response.status_code == 201, response.json()
    assert response.json() == {"created": 1, "existing": 1, "prompt_ids": [Prompt.objects.get().pk] * 2}
    prompt = Prompt.objects.get()
    assert (prompt.external_id, prompt.public_id) == ("first", "first")
    assert sorted(PromptExternalId.objects.values_list("value", flat=True)) == ["first", "second"]

    # A later candidate import by the second id finds the prompt.
    candidates = jsonl(
        {"prompt_id": "second", "text": "By the second id.", "generator": "m"},
        {"prompt_id": "first", "text": "By the first id.", "generator": "m"},
    )
    imported = admin_api.post("/api/v1/candidates/import/", data=candidates, content_type="application/jsonl")
    assert imported.status_code == 201, imported.json()
    assert set(prompt.candidates.values_list("text", flat=True)) == {"By the second id.", "By the first id."}

    listed = admin_api.get("/api/v1/prompts/").json()["results"]
    assert [(p["external_id"], p["external_ids"]) for p in listed] == [("first", ["first", "second"])]


def test_a_second_id_in_a_later_file_is_added_and_reimport_creates_nothing():
    prompts_import(stream=[jsonl({"id": "a", "prompt": "Hello?"})])
    again = prompts_import(stream=[jsonl({"id": "b", "prompt": "Hello?"})])
    third = prompts_import(stream=[jsonl({"id": "b", "prompt": "Hello?"}, {"id": "a", "prompt": "Hello?"})])

    prompt = Prompt.objects.get()
    assert (again.created, again.existing, third.created) == (0, 1, 0)
    assert prompt.external_id == "a"
    assert list(prompt.external_ids.values_list("value", flat=True)) == ["a", "b"]


def test_an_id_already_naming_other_messages_is_still_refused():
    prompts_import(stream=[jsonl({"id": "a", "prompt": "One?"}, {"id": "b", "prompt": "Two?"})])
    prompts_import(stream=[jsonl({"id": "b2", "prompt": "Two?"})])

    with pytest.raises(ApplicationError) as caught:
        prompts_import(stream=[jsonl({"id": "b2", "prompt": "One?"})])

    assert caught.value.field == "id"
    assert '"b2" already names a prompt with other messages' in caught.value.message
    assert Prompt.objects.count() == 2


def test_a_prompt_made_without_its_id_row_gains_one_with_its_second_id():
    """Prompts written before external ids had their own table (or by hand) have only
    ``external_id``; adding a second id records both."""
    prompt = PromptFactory.create(external_id="old", messages=user("Legacy?"))
    assert not PromptExternalId.objects.exists()

    prompts_import(stream=[jsonl({"id": "new", "prompt": "Legacy?"})])

    assert sorted(prompt.external_ids.values_list("value", flat=True)) == ["new", "old"]


def test_prompt_selection_finds_a_prompt_by_any_of_its_ids():
    prompts_import(stream=[jsonl({"id": "x-1", "prompt": "Pick me?"}, {"id": "x-2", "prompt": "Pick me?"})])
    other = PromptFactory.create(external_id="y")
    prompt = Prompt.objects.get(external_id="x-1")

    assert prompts_select(ids=["x-2", "y"]) == [prompt, other]
    assert prompts_select(ids=["x-1"]) == [prompt]
    assert list(prompt_list(ids=["x-2"])) == [prompt]
    with pytest.raises(ApplicationError):
        prompts_select(ids=["x-3"])


def test_queue_creation_by_the_second_id(admin_api, rater):
    from tests.factories import CandidateFactory, GeneratorFactory, RubricFactory

    prompts_import(stream=[jsonl({"id": "one", "prompt": "Q?"}, {"id": "uno", "prompt": "Q?"})])
    prompt = Prompt.objects.get()
    generator = GeneratorFactory()
    for i, text in enumerate(("A.", "B.")):
        CandidateFactory(prompt=prompt, generator=generator, sample_index=i, text=text)

    response = admin_api.post(
        "/api/v1/queues/",
        {
            "name": "by-alias",
            "rubric": str(RubricFactory().pk),
            "prompts": ["uno"],
            "members": [rater.username],
        },
        format="json",
    )

    assert response.status_code == 201, response.json()


def test_prompt_get_or_create_with_a_second_id():
    first, created = prompt_get_or_create(messages=user("Direct?"), external_id="d1")
    same, created_again = prompt_get_or_create(messages=user("Direct?"), external_id="d2")

    assert created and not created_again and same.pk == first.pk
    assert sorted(first.external_ids.values_list("value", flat=True)) == ["d1", "d2"]
