from __future__ import annotations

import pytest

from comparisons.selectors import prompt_list, prompts_select
from labeling.errors import ApplicationError
from tests.factories import CandidateFactory, PromptFactory

URL = "/api/v1/prompts/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def prompts():
    a = PromptFactory.create(external_id="a", tags=["en", "math"], collection="c1")
    b = PromptFactory.create(tags=["de"], collection="c1")
    c = PromptFactory.create(tags=[], collection="c2", source="demo")
    CandidateFactory.create(prompt=a)
    CandidateFactory.create(prompt=a)
    CandidateFactory.create(prompt=c)
    return a, b, c


def test_prompt_list_selector_filters(prompts):
    a, b, c = prompts

    assert list(prompt_list()) == [a, b, c]
    assert list(prompt_list(tags=["math"])) == [a]
    assert list(prompt_list(tags=["de", "math"])) == [a, b]
    assert list(prompt_list(tags=["nothing"])) == []
    assert list(prompt_list(tags=[])) == []
    assert list(prompt_list(collection="c1")) == [a, b]
    assert list(prompt_list(collection="c1", tags=["de"])) == [b]
    assert list(prompt_list(ids=[c.pk, "a"])) == [a, c]
    assert list(prompt_list(ids=[str(b.pk)])) == [b]
    assert list(prompt_list(source="demo")) == [c]
    assert [vars(p)["candidate_count"] for p in prompt_list(with_candidate_count=True)] == [2, 0, 1]


def test_prompt_list_api(researcher_api, prompts):
    a, b, c = prompts
    response = researcher_api.get(URL)

    assert response.status_code == 200
    data = response.json()
    assert data["count"] == 3
    first = data["results"][0]
    assert first == {
        "id": a.pk,
        "external_id": "a",
        "external_ids": ["a"],
        "messages": a.messages,
        "tags": ["en", "math"],
        "collection": "c1",
        "source": "import",
        "candidate_count": 2,
        "created_at": first["created_at"],
    }
    assert [r["candidate_count"] for r in data["results"]] == [2, 0, 1]


def test_prompt_list_api_filters_and_pages(admin_api, prompts):
    a, b, c = prompts

    by_tags = admin_api.get(URL, {"tags": "de,math"}).json()
    assert [r["id"] for r in by_tags["results"]] == [a.pk, b.pk]
    by_collection = admin_api.get(URL, {"collection": "c2"}).json()
    assert [r["id"] for r in by_collection["results"]] == [c.pk]
    page = admin_api.get(URL, {"page_size": 2, "page": 2}).json()
    assert [r["id"] for r in page["results"]] == [c.pk]
    assert admin_api.get(URL, {"source": "bogus"}).status_code == 400


def test_prompt_list_query_count_does_not_grow(admin_api, prompts, django_assert_max_num_queries):
    for _ in range(10):
        CandidateFactory.create(prompt=PromptFactory.create())
    with django_assert_max_num_queries(3):
        assert admin_api.get(URL).status_code == 200


def test_raters_get_403(rater_api, prompts):
    assert rater_api.get(URL).status_code == 403


def test_prompts_select_combines_tags_and_a_collection_and_names_what_matched_nothing():
    a = PromptFactory.create(tags=["math"], collection="evals")
    PromptFactory.create(tags=["math"], collection="train")
    PromptFactory.create(tags=["chat"], collection="evals")
    assert prompts_select(tags=["math"], collection="evals") == [a]
    with pytest.raises(ApplicationError, match='no prompt in collection "evals" has the tag "code"'):
        prompts_select(tags=["code"], collection="evals")
    with pytest.raises(
        ApplicationError, match="give prompt ids, or tags and/or a collection, or all prompts"
    ) as caught:
        prompts_select(ids=[a.pk], tags=["math"])
    assert caught.value.field == "prompts"
    # ids keep the order given; external ids and pks mix
    b = PromptFactory.create(external_id="ext-b")
    assert prompts_select(ids=["ext-b", a.pk]) == [b, a]
