"""The model leaderboard (``GET /api/v1/leaderboard/``, ``/manage/leaderboard/``): battles from real
judgments made through the claim and submit services and through the HTTP API, mapped from the
labels raters saw to generators, rankings expanded into pairs, ties as halves; scopes, the
permissions, and the scores against a known answer and the arithmetic module."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from django.test import Client

from comparisons.models import Candidate
from labeling import bradley_terry
from labeling.selectors import leaderboard as leaderboard_selectors
from labeling.services import assignment_claim_next, judgment_submit
from model_runner.models import Generator
from tests.factories import (
    CandidateFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    RubricFactory,
    make_comparison,
)
from tests.test_page_markup import _check as check_markup

pytestmark = pytest.mark.django_db

DOUBLING = 400 * math.log10(2)


def _pairwise_queue(pairs, *, raters, tags=()):
    """A pairwise queue with one item per (generator, generator) in ``pairs``, each a new prompt."""
    queue = QueueFactory(overlap=len(raters), members=raters)
    for first, second in pairs:
        prompt = PromptFactory(tags=list(tags))
        candidates = [
            CandidateFactory(prompt=prompt, generator=first, sample_index=0),
            CandidateFactory(prompt=prompt, generator=second, sample_index=1),
        ]
        QueueItemFactory(queue=queue, comparison=make_comparison(prompt, candidates))
    return queue


def _judge_all(queue, raters, decide):
    """Every rater judges every item they get; ``decide(generator shown as A, generator shown as
    B)`` gives the preference in shown labels (negative = A better)."""
    for rater in raters:
        while (assignment := assignment_claim_next(rater=rater, queue=queue)) is not None:
            shown = [Candidate.objects.get(pk=pk).generator for pk in assignment.shown_order]
            judgment_submit(assignment=assignment, preference=decide(shown[0], shown[1]))


def _by_name(body):
    return {row["name"]: row for row in body["generators"]}


@pytest.fixture
def three():
    return [GeneratorFactory(name=name) for name in ("alpha", "beta", "gamma")]


def test_known_answer_through_judgments(researcher_api, three, monkeypatch):
    # Strengths 4 : 2 : 1, and outcomes equal to their expectations: alpha beats beta 4 of 6,
    # alpha beats gamma 4 of 5, beta beats gamma 2 of 3 (five times over, so that no bootstrap
    # round leaves gamma without a win). The MLE, without the prior, is then exactly 4 : 2 : 1.
    monkeypatch.setattr(leaderboard_selectors, "PRIOR_TIES", 0.0)
    alpha, beta, gamma = three
    raters = [RaterFactory()]
    plan = {
        (alpha, beta): [alpha] * 20 + [beta] * 10,
        (alpha, gamma): [alpha] * 20 + [gamma] * 5,
        (beta, gamma): [beta] * 10 + [gamma] * 5,
    }
    pairs = [pair for pair, winners in plan.items() for _ in winners]
    queue = _pairwise_queue(pairs, raters=raters)
    # Hand each item's winner out in order: the n-th judgment of a pair goes to its n-th winner.
    remaining = {frozenset(pair): list(winners) for pair, winners in plan.items()}

    def decide(a, b):
        winner = remaining[frozenset((a, b))].pop()
        return -2 if winner == a else 2

    _judge_all(queue, raters, decide)
    response = researcher_api.get("/api/v1/leaderboard/")
    assert response.status_code == 200, response.content
    body = response.json()
    rows = _by_name(body)
    assert [r["name"] for r in body["generators"]] == ["alpha", "beta", "gamma"]
    assert rows["alpha"]["score"] == pytest.approx(1000 + DOUBLING, abs=0.05)
    assert rows["beta"]["score"] == pytest.approx(1000, abs=0.05)
    assert rows["gamma"]["score"] == pytest.approx(1000 - DOUBLING, abs=0.05)
    assert (rows["alpha"]["wins"], rows["alpha"]["ties"], rows["alpha"]["losses"]) == (40, 0, 15)
    assert (rows["gamma"]["wins"], rows["gamma"]["losses"], rows["gamma"]["battles"]) == (10, 30, 40)
    assert body["battles"] == 70
    assert body["battle_counts"] == [[0, 30, 25], [30, 0, 15], [25, 15, 0]]
    assert body["win_rate"][0] == [None, pytest.approx(4 / 6, abs=1e-4), pytest.approx(0.8, abs=1e-4)]
    for row in body["generators"]:
        assert row["lower"] <= row["score"] <= row["upper"]


def test_direction_and_ties_whatever_side_a_generator_was_shown_on(researcher_api, three):
    # alpha is always preferred to beta, whichever label it had; beta and gamma always tie.
    alpha, beta, gamma = three
    raters = [RaterFactory() for _ in range(3)]
    queue = _pairwise_queue([(alpha, beta)] * 4 + [(beta, gamma)] * 4, raters=raters)
    sides = {"a": 0, "b": 0}

    def decide(a, b):
        if {a, b} == {beta, gamma}:
            return 0
        sides["a" if a == alpha else "b"] += 1
        return -3 if a == alpha else 1

    _judge_all(queue, raters, decide)
    assert sides["a"] and sides["b"]  # alpha was shown on both sides
    rows = _by_name(researcher_api.get("/api/v1/leaderboard/").json())
    assert (rows["alpha"]["wins"], rows["alpha"]["ties"], rows["alpha"]["losses"]) == (12, 0, 0)
    assert (rows["beta"]["wins"], rows["beta"]["ties"], rows["beta"]["losses"]) == (0, 12, 12)
    assert (rows["gamma"]["wins"], rows["gamma"]["ties"], rows["gamma"]["losses"]) == (0, 12, 0)
    assert rows["beta"]["win_rate"] == pytest.approx(0.25)
    assert (
        rows["alpha"]["rank"] == 1 and rows["alpha"]["score"] > rows["gamma"]["score"] > rows["beta"]["score"]
    )
    # The scores are the fit of the arithmetic module on these counts (beta-gamma ties as halves).
    wins = np.array([[0, 12, 0], [0, 0, 0], [0, 0, 0]])
    ties = np.array([[0, 0, 0], [0, 0, 12], [0, 12, 0]])
    expected = bradley_terry.rate(wins, ties, rounds=100, seed=0, prior=leaderboard_selectors.PRIOR_TIES)
    for i, name in enumerate(("alpha", "beta", "gamma")):
        assert rows[name]["score"] == pytest.approx(expected.scores[i], abs=0.05)
        assert rows[name]["lower"] == pytest.approx(expected.lower[i], abs=0.05)
        assert rows[name]["upper"] == pytest.approx(expected.upper[i], abs=0.05)


def test_rankings_through_the_api_count_as_their_pairs(admin_api, researcher_api, rater_api, rater, three):
    alpha, beta, gamma = three
    delta = GeneratorFactory(name="delta")
    prompt = PromptFactory(tags=["rank"])
    texts = {}
    for generator in (alpha, beta, gamma, delta):
        texts[f"Answer by {generator.name}"] = generator.name
        CandidateFactory(
            prompt=prompt, generator=generator, sample_index=0, text=f"Answer by {generator.name}"
        )
    created = admin_api.post(
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
    assert created.status_code == 201, created.content
    body = rater_api.post(f"/api/v1/queues/{created.json()['id']}/next/").json()
    label = {texts[r["text"]]: r["label"] for r in body["responses"]}
    # gamma best; alpha and delta tied; beta last.
    ranking = [[label["gamma"]], [label["alpha"], label["delta"]], [label["beta"]]]
    judged = rater_api.post(
        f"/api/v1/assignments/{body['id']}/judgment/", {"ranking": ranking}, format="json"
    )
    assert judged.status_code == 201, judged.content

    board = researcher_api.get("/api/v1/leaderboard/").json()
    rows = _by_name(board)
    assert board["battles"] == 6  # 4 choose 2
    assert (rows["gamma"]["wins"], rows["gamma"]["ties"], rows["gamma"]["losses"]) == (3, 0, 0)
    assert (rows["alpha"]["wins"], rows["alpha"]["ties"], rows["alpha"]["losses"]) == (1, 1, 1)
    assert (rows["delta"]["wins"], rows["delta"]["ties"], rows["delta"]["losses"]) == (1, 1, 1)
    assert (rows["beta"]["wins"], rows["beta"]["ties"], rows["beta"]["losses"]) == (0, 0, 3)
    order = [r["name"] for r in board["generators"]]
    assert order[0] == "gamma" and order[-1] == "beta"
    assert rows["alpha"]["score"] == pytest.approx(rows["delta"]["score"], abs=0.05)
    alpha_row = order.index("alpha")
    assert board["win_rate"][alpha_row][order.index("delta")] == 0.5
    assert board["win_rate"][alpha_row][order.index("beta")] == 1.0
    assert board["win_rate"][alpha_row][order.index("gamma")] == 0.0


def test_same_generator_pairs_and_humans_are_left_out_unless_asked(researcher_api, three):
    alpha, beta, _ = three
    human = GeneratorFactory(name="rater-rewrites", backend=Generator.Backend.HUMAN)
    raters = [RaterFactory()]
    queue = _pairwise_queue([(alpha, alpha), (alpha, beta), (human, alpha)], raters=raters)
    _judge_all(queue, raters, lambda a, b: -1 if a != beta else 1)  # beta always loses
    board = researcher_api.get("/api/v1/leaderboard/").json()
    assert board["battles"] == 1 and sorted(_by_name(board)) == ["alpha", "beta"]

    with_human = researcher_api.get("/api/v1/leaderboard/", {"include_human": "true"}).json()
    assert with_human["battles"] == 2 and with_human["scope"]["include_human"] is True
    rows = _by_name(with_human)
    assert rows["rater-rewrites"]["backend"] == "human" and rows["rater-rewrites"]["battles"] == 1
    assert rows["alpha"]["battles"] == 2


def test_scopes_per_queue_and_per_tag(researcher_api, three):
    alpha, beta, gamma = three
    raters = [RaterFactory()]
    maths = _pairwise_queue([(alpha, beta)] * 3, raters=raters, tags=["math", "easy"])
    poems = _pairwise_queue([(beta, gamma)] * 2, raters=raters, tags=["poetry"])
    _judge_all(maths, raters, lambda a, b: -1)
    _judge_all(poems, raters, lambda a, b: 0)

    assert researcher_api.get("/api/v1/leaderboard/").json()["battles"] == 5
    by_queue = researcher_api.get("/api/v1/leaderboard/", {"queue": poems.pk}).json()
    assert by_queue["battles"] == 2 and sorted(_by_name(by_queue)) == ["beta", "gamma"]
    assert by_queue["scope"]["queue"] == poems.pk
    by_tag = researcher_api.get("/api/v1/leaderboard/", {"tag": "math"}).json()
    assert by_tag["battles"] == 3 and sorted(_by_name(by_tag)) == ["alpha", "beta"]
    nothing = researcher_api.get("/api/v1/leaderboard/", {"tag": "law"}).json()
    assert nothing["battles"] == 0 and nothing["generators"] == [] and nothing["win_rate"] == []


def test_rounds_and_seed_change_only_the_intervals(researcher_api, three):
    alpha, beta, _ = three
    raters = [RaterFactory()]
    queue = _pairwise_queue([(alpha, beta)] * 6, raters=raters)
    outcomes = iter([-1, -1, -1, 1, 0, -1])
    _judge_all(queue, raters, lambda a, b: next(outcomes) * (1 if a == alpha else -1))
    first = researcher_api.get("/api/v1/leaderboard/", {"rounds": 200, "seed": 4}).json()
    again = researcher_api.get("/api/v1/leaderboard/", {"rounds": 200, "seed": 4}).json()
    other = researcher_api.get("/api/v1/leaderboard/", {"rounds": 200, "seed": 5}).json()
    assert first == again and first["scope"]["rounds"] == 200
    assert [r["score"] for r in first["generators"]] == [r["score"] for r in other["generators"]]
    assert (first["generators"][0]["lower"], first["generators"][0]["upper"]) != (
        other["generators"][0]["lower"],
        other["generators"][0]["upper"],
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"rounds": "10"}, "rounds"),
        ({"rounds": "5000"}, "rounds"),
        ({"rounds": "²"}, "rounds"),
        ({"queue": "999999"}, "queue"),
        ({"queue": "first"}, "queue"),
        ({"include_human": "perhaps"}, "include_human"),
        ({"seed": "-1"}, "seed"),
        ({"tag": "x" * 201}, "tag"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(researcher_api, params, field):
    response = researcher_api.get("/api/v1/leaderboard/", params)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_who_may_read_it(api, rater_api, researcher_api, admin_api):
    assert api.get("/api/v1/leaderboard/").status_code in (401, 403)
    assert rater_api.get("/api/v1/leaderboard/").status_code == 403
    assert researcher_api.get("/api/v1/leaderboard/").status_code == 200
    assert admin_api.get("/api/v1/leaderboard/").status_code == 200


def test_schema_describes_the_route(api):
    schema = json.loads(api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    operation = schema["paths"]["/api/v1/leaderboard/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"queue", "tag", "rounds", "include_human"}
    assert "Leaderboard" in schema["components"]["schemas"]


def test_page_draws_the_charts_for_researchers_only(three, researcher, rater):
    alpha, beta, gamma = three
    raters = [RaterFactory()]
    queue = _pairwise_queue([(alpha, beta), (beta, gamma), (alpha, gamma)] * 2, raters=raters)
    _judge_all(queue, raters, lambda a, b: -1 if a.name < b.name else 1)  # earlier name wins
    client = Client()
    client.force_login(researcher)
    page = client.get("/manage/leaderboard/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="score-dot"') == 3
    assert html.count('class="cell"') == 6 and html.count('class="cell self"') == 3
    assert "<script>" not in html  # no inline script (the CSP allows none)
    check_markup(html, errors=False)
    assert client.get("/manage/").content.decode().count('href="/manage/leaderboard/"') == 1
    scoped = client.get("/manage/leaderboard/", {"queue": queue.pk, "rounds": "150"})
    assert scoped.status_code == 200 and "150 bootstrap rounds" in scoped.content.decode()
    bad = client.get("/manage/leaderboard/", {"rounds": "7"})
    assert bad.status_code == 400 and "from 100 to 1000" in bad.content.decode()
    check_markup(bad.content.decode(), errors=True)  # the field marked invalid, described by its error
    client.force_login(rater)
    assert client.get("/manage/leaderboard/").status_code == 403
