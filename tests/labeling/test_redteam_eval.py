"""Test-set runs and the rates they give: the held-out test set replayed against two generators
(the fake backend answers), verdicts given through the review service, then attack success and
over-refusal rates with Wilson intervals, alone and side by side. The Wilson interval is checked
against Newcombe's published worked examples."""

from __future__ import annotations

import pytest

from comparisons.models import Candidate
from labeling.models import Attack, RedteamEvalRun
from labeling.selectors.redteam import attack_side
from labeling.selectors.redteam_math import Rate, discordant_pairs, wilson_interval
from labeling.selectors.redteam_rates import redteam_rates
from labeling.services.redteam_eval import redteam_eval_run, redteam_eval_settle
from labeling.services.redteam_reviews import attack_review_submit
from model_runner.models import Generator
from tests.factories import AttackFactory, GeneratorFactory, ReviewQueueFactory


# Newcombe RG (1998), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Statistics in Medicine 17:857-872, Table II, method 3 (Wilson score, no
# continuity correction), to the 4 decimals published.
@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_newcombes_worked_examples(successes, trials, low, high):
    got = wilson_interval(successes, trials)
    assert got is not None
    assert round(got[0], 4) == low and round(got[1], 4) == high


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) is None
    assert wilson_interval(5, 5) == (pytest.approx(0.5655, abs=1e-4), 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    assert Rate(1, 4).as_dict() == {"count": 1, "trials": 4, "rate": 0.25, "ci95": [0.0456, 0.6994]}
    pairs = [(True, True), (True, False), (False, True), (False, True), (False, False)]
    assert discordant_pairs(pairs) == {"both": 1, "a_only": 1, "b_only": 2, "neither": 1}


def _families(side: str, count: int) -> list[str]:
    found = [f"family-{n}" for n in range(500) if attack_side(family=f"family-{n}") == side]
    return found[:count]


@pytest.fixture
def held_out(db):
    """Five confirmed test-side attacks (three illegal, two violence), and one on the train side."""
    labels = [
        ("illegal", "role_play", "complied"),
        ("illegal", "hypothetical", "partial"),
        ("illegal", "role_play", "over_refused"),
        ("violence", "role_play", "complied"),
        ("violence", "obfuscation", "complied"),
    ]
    tests = [
        AttackFactory(
            status=Attack.Status.CONFIRMED,
            source=Attack.Source.SESSION,
            family=family,
            category=category,
            tactic=tactic,
            outcome=outcome,
            severity=4,
        )
        for family, (category, tactic, outcome) in zip(_families("test", 5), labels, strict=True)
    ]
    train = AttackFactory(status=Attack.Status.CONFIRMED, family=_families("train", 1)[0])
    return {"tests": tests, "train": train}


def _review(attempt: Attack, reviewer, verdict: str, outcome: str = "") -> None:
    labels = (
        {"outcome": outcome, "category": attempt.category, "tactic": attempt.tactic, "severity": 3}
        if verdict == "confirm"
        else {}
    )
    attack_review_submit(attack=attempt, reviewer=reviewer, verdict=verdict, **labels)


def test_two_generators_side_by_side(
    fake_backend, held_out, admin_api, admin_user, researcher_api, client, django_capture_on_commit_callbacks
):
    queue = ReviewQueueFactory()
    a = GeneratorFactory(name="model-a", backend=Generator.Backend.TRANSFORMERS)
    b = GeneratorFactory(name="model-b", backend=Generator.Backend.TRANSFORMERS)
    runs = {}
    for generator in (a, b):
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_api.post(
                "/api/v1/redteam/eval-runs/", {"queue": queue.pk, "generator": generator.name}, format="json"
            )
        assert response.status_code == 201, response.json()
        runs[generator.name] = RedteamEvalRun.objects.get(pk=response.json()["id"])

    tests = {t.pk: t for t in held_out["tests"]}
    for run in runs.values():
        run.refresh_from_db()
        assert (run.status, run.total, run.answered) == (RedteamEvalRun.Status.REVIEWING, 5, 5)
        attempts = list(run.attempts.select_related("reply"))
        assert len(attempts) == 5 and {x.test_attack_id for x in attempts} == set(tests)  # not the train one
        for attempt in attempts:
            test = tests[attempt.test_attack_id]
            assert attempt.source == Attack.Source.EVAL and attempt.status == Attack.Status.PENDING
            assert attempt.queue == queue and attempt.prompt_id == test.prompt_id
            assert (attempt.family, attempt.category, attempt.tactic, attempt.severity) == (
                test.family,
                test.category,
                test.tactic,
                test.severity,
            )
            assert attempt.outcome == "" and attempt.reply.generator == run.generator
    # Running again (a redelivered message) writes nothing twice.
    before = Candidate.objects.count()
    assert redteam_eval_run(run=runs["model-a"]) == 0
    assert Candidate.objects.count() == before and Attack.objects.filter(source="eval").count() == 10

    # Verdicts. Model a falls to the three role-play attacks; model b to one, and over-refuses one.
    # Model b's obfuscation attempt stays pending: the comparison leaves that test attack out.
    t = held_out["tests"]
    verdicts = {
        "model-a": [
            ("confirm", "complied"),
            ("confirm", "partial"),
            ("confirm", "refused"),
            ("confirm", "complied"),
            ("reject", ""),
        ],
        "model-b": [
            ("confirm", "refused"),
            ("confirm", "complied"),
            ("confirm", "over_refused"),
            ("reject", ""),
            None,
        ],
    }
    for name, given in verdicts.items():
        for test, verdict in zip(t, given, strict=True):
            if verdict is not None:
                _review(runs[name].attempts.get(test_attack=test), admin_user, *verdict)
    # The last verdict of a run settles it; no page or API read is needed.
    for run in runs.values():
        run.refresh_from_db()
    assert runs["model-a"].status == RedteamEvalRun.Status.DONE
    assert runs["model-b"].status == RedteamEvalRun.Status.REVIEWING
    assert redteam_eval_settle(run=runs["model-b"]).status == RedteamEvalRun.Status.REVIEWING

    rates = researcher_api.get("/api/v1/redteam/rates/", {"generators": "model-a,model-b"}).json()
    first, second = rates["generators"]
    assert (first["name"], first["reviewed"], first["pending"]) == ("model-a", 5, 0)
    assert first["attack_success"] == {"count": 3, "trials": 5, "rate": 0.6, "ci95": [0.2307, 0.8824]}
    assert first["over_refusal"]["count"] == 0 and first["over_refusal"]["ci95"] == [0.0, 0.4345]
    assert (second["reviewed"], second["pending"]) == (4, 1)
    assert second["attack_success"]["count"] == 1 and second["over_refusal"]["count"] == 1
    by_category = {row["key"]: row for row in first["by_category"]}
    assert by_category["illegal"]["attack_success"]["count"] == 2
    assert by_category["illegal"]["attack_success"]["trials"] == 3
    assert by_category["violence"]["attack_success"] == {
        "count": 1,
        "trials": 2,
        "rate": 0.5,
        "ci95": [0.0945, 0.9055],
    }
    by_tactic = {row["key"]: row for row in first["by_tactic"]}
    assert (
        by_tactic["role_play"]["attack_success"]["count"] == 2
        and by_tactic["role_play"]["label"] == "Role-play"
    )

    comparison = rates["comparison"]
    assert comparison["shared"] == 4  # the obfuscation attack has no verdict for model b
    ca, cb = comparison["rows"]
    assert ca["attack_success"]["count"] == 3 and ca["attack_success"]["trials"] == 4
    assert cb["attack_success"]["count"] == 1 and cb["attack_success"]["trials"] == 4
    assert cb["over_refusal"]["count"] == 1
    assert comparison["attack_success_pairs"] == {"both": 1, "a_only": 2, "b_only": 0, "neither": 1}

    # One category only; the page draws the same numbers.
    violence = redteam_rates(generators=[a, b], category="violence")
    assert violence["generators"][0]["attack_success"]["trials"] == 2
    assert violence["comparison"]["shared"] == 1
    client.force_login(admin_user)
    page = client.get("/manage/redteam/", {"generators": "model-a,model-b"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="attack_success-chart"' in html and 'id="over_refusal-chart"' in html
    assert "model-a: 75.0% (3 of 4), 95% interval" in html
    assert "Side by side on the <strong>4</strong> test attacks" in html


def test_a_category_run_and_validation(fake_backend, held_out, admin_api, django_capture_on_commit_callbacks):
    queue = ReviewQueueFactory()
    GeneratorFactory(name="model-c", backend=Generator.Backend.TRANSFORMERS)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(
            "/api/v1/redteam/eval-runs/",
            {"queue": queue.name, "generator": "model-c", "category": "violence"},
            format="json",
        )
    assert response.status_code == 201
    body = admin_api.get(f"/api/v1/redteam/eval-runs/{response.json()['id']}/").json()
    assert (body["total"], body["answered"], body["pending"], body["status"]) == (2, 2, 2, "reviewing")

    for payload, field in [
        ({"queue": queue.pk, "generator": "nobody"}, "generator"),
        ({"queue": queue.pk, "generator": "model-c", "category": "nope"}, "category"),
        ({"queue": queue.pk, "generator": "model-c", "category": "privacy"}, "category"),  # no test attacks
        ({"queue": 999999, "generator": "model-c"}, "queue"),
    ]:
        refused = admin_api.post("/api/v1/redteam/eval-runs/", payload, format="json")
        assert refused.status_code == 400 and refused.json()["field"] == field, payload
    assert RedteamEvalRun.objects.count() == 1
    assert admin_api.get("/api/v1/redteam/rates/", {"generators": "ghost"}).json()["field"] == "generators"
    assert admin_api.get("/api/v1/redteam/rates/", {"category": "ghost"}).status_code == 400


def test_rates_are_for_researchers_and_admins(researcher_api, rater_api):
    assert researcher_api.get("/api/v1/redteam/rates/").json()["generators"] == []
    assert rater_api.get("/api/v1/redteam/rates/").status_code == 403
    assert researcher_api.post("/api/v1/redteam/eval-runs/", {}, format="json").status_code == 403


def test_the_page_is_for_admins(client, admin_user, researcher):
    client.force_login(researcher)
    assert client.get("/manage/redteam/").status_code == 403
    client.force_login(admin_user)
    page = client.get("/manage/redteam/")
    assert page.status_code == 200
    assert 'id="adversary-form"' in page.content.decode() and 'id="eval-form"' in page.content.decode()
