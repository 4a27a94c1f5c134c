"""K-way ranking queues (the InstructGPT task): K candidates ranked best first, ties grouped."""

from __future__ import annotations

import pytest

from labeling.models import Judgment, Queue
from labeling.selectors import ranking_in_positions
from tests.factories import CandidateFactory, GeneratorFactory, PromptFactory, RubricFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ranking_queue(admin_api, rater):
    generator = GeneratorFactory()
    prompt = PromptFactory(tags=["rank"])
    for i in range(4):
        CandidateFactory(prompt=prompt, generator=generator, sample_index=i, text=f"Answer {i}")
    response = admin_api.post(
        "/api/v1/queues/",
        {
            "name": "rank4",
            "kind": "ranking",
            "size": 4,
            "rubric": str(RubricFactory().pk),
            "tags": ["rank"],
            "members": [rater.username],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return Queue.objects.get(name="rank4")


def test_rank_four_with_a_tie(rater_api, ranking_queue):
    body = rater_api.post(f"/api/v1/queues/{ranking_queue.pk}/next/").json()
    assert [r["label"] for r in body["responses"]] == ["A", "B", "C", "D"]
    response = rater_api.post(
        f"/api/v1/assignments/{body['id']}/judgment/", {"ranking": [["C"], ["A", "D"], ["B"]]}, format="json"
    )
    assert response.status_code == 201, response.content
    judgment = Judgment.objects.get()
    assert judgment.ranking == [["C"], ["A", "D"], ["B"]] and judgment.preference is None
    shown = judgment.assignment.shown_order
    canonical = sorted(shown)
    in_positions = ranking_in_positions(ranking=judgment.ranking, shown_order=shown, canonical=canonical)
    texts = {c: f"Answer {i}" for i, c in enumerate(canonical)}
    label_text = {r["label"]: r["text"] for r in body["responses"]}
    assert texts[canonical[in_positions[0][0]]] == label_text["C"]


@pytest.mark.parametrize(
    "ranking",
    [
        [["A"], ["B"], ["C"]],
        [["A", "A"], ["B"], ["C"], ["D"]],
        [["A"], ["B"], ["C"], ["E"]],
        "A>B>C>D",
        [[], ["A", "B", "C", "D"]],
    ],
)
def test_bad_rankings_are_400_and_write_nothing(rater_api, ranking_queue, ranking):
    body = rater_api.post(f"/api/v1/queues/{ranking_queue.pk}/next/").json()
    response = rater_api.post(
        f"/api/v1/assignments/{body['id']}/judgment/", {"ranking": ranking}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "ranking"
    assert not Judgment.objects.exists()


def test_pairwise_answer_on_ranking_item_is_refused(rater_api, ranking_queue):
    body = rater_api.post(f"/api/v1/queues/{ranking_queue.pk}/next/").json()
    response = rater_api.post(
        f"/api/v1/assignments/{body['id']}/judgment/", {"preference": -1}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "ranking"
