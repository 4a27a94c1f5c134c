"""The reward-model check of an export: statistics against independent computations, the pairs it
reads, the API through HTTP (permissions, 404/409), and (marker ``model``) the real training on a
planted-answer dataset and on the same dataset with every label flipped."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from export.models import ExportRun, RewardCheck
from export.selectors.reward_pairs import _gold_ordered, known_pairs_parse, known_pairs_texts, snapshot_pairs
from export.selectors.runs import export_run_folder
from export.services.reward_checks import (
    BOOTSTRAP_ROUNDS,
    accuracy_interval,
    direction_verdict,
    reward_check_options_clean,
)
from labeling.errors import ApplicationError
from labeling.models import Assignment
from tests.factories import (
    AssignmentFactory,
    JudgmentFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    make_pair,
)

EXPORTS = "/api/v1/exports/"
POLITE = "Thank you, glad to help: {}."
RUDE = "Shut up, you fool: {}."
TINY = {"steps": 8, "max_length": 64, "batch_size": 4, "learning_rate": 2e-4, "train_layers": 2}


def check_url(run_id: int) -> str:
    return f"{EXPORTS}{run_id}/reward-check/"


# --- statistics ---------------------------------------------------------------------------------


def test_accuracy_interval_matches_a_resampling_bootstrap():
    """The binomial shortcut against resampling the pairs themselves (an independent computation)."""
    outcomes = [True] * 70 + [False] * 30
    accuracy, low, high = accuracy_interval(outcomes, seed=3)
    assert accuracy == 0.7
    rng = np.random.default_rng(11)
    arr = np.array(outcomes, dtype=float)
    means = [rng.choice(arr, size=arr.size, replace=True).mean() for _ in range(BOOTSTRAP_ROUNDS)]
    ref_low, ref_high = np.percentile(means, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=0.025) and high == pytest.approx(ref_high, abs=0.025)
    # The normal approximation: 0.7 +- 1.96 * sqrt(0.7 * 0.3 / 100) = [0.610, 0.790].
    assert low == pytest.approx(0.610, abs=0.025) and high == pytest.approx(0.790, abs=0.025)
    assert accuracy_interval([]) is None
    assert accuracy_interval([True] * 5) == (1.0, 1.0, 1.0)


def test_direction_verdict():
    assert direction_verdict([None, None]) == ""
    assert direction_verdict([(0.9, 0.8, 1.0), None]) == "pass"
    assert direction_verdict([(0.1, 0.0, 0.3), (0.9, 0.8, 1.0)]) == "fail"  # any clearly wrong set fails
    assert direction_verdict([(0.45, 0.2, 0.7)]) == "inconclusive"
    assert direction_verdict([(0.35, 0.1, 0.6)]) == "fail"  # clearly under 0.5, though its interval is wide
    assert direction_verdict([(0.8, 0.45, 1.0)]) == "inconclusive"


def test_options_are_checked_and_named():
    assert reward_check_options_clean(options={"steps": 10})["steps"] == 10
    assert reward_check_options_clean(options=None)["max_length"] == 256
    for options, field in [
        ({"steps": 0}, "options.steps"),
        ({"steps": 2.5}, "options.steps"),
        ({"learning_rate": "x"}, "options.learning_rate"),
        ({"epochs": 1}, "options.epochs"),
        ({"batch_size": True}, "options.batch_size"),
    ]:
        with pytest.raises(ApplicationError) as exc:
            reward_check_options_clean(options=options)
        assert exc.value.field == field


def test_gold_answers_become_pairs_in_stored_positions():
    assert _gold_ordered({"preference": -2}, 2) == [(0, 1)]
    assert _gold_ordered({"preference": 3}, 2) == [(1, 0)]
    assert _gold_ordered({"preference": 0}, 2) == []
    assert _gold_ordered({"ranking": [[2], [0, 1]]}, 3) == [(2, 0), (2, 1)]
    assert _gold_ordered({"ranking": [[1], [0], [2]]}, 3) == [(1, 0), (1, 2), (0, 2)]


def test_known_pairs_file_is_parsed_with_line_numbers():
    text = '{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}\n\n'
    text += '{"prompt": [{"role": "user", "content": "Hi?"}], "chosen": "Hello.", "rejected": "No."}\n'
    pairs = known_pairs_parse(text=text)
    assert [p["prompt"] for p in pairs] == ["User: Hi?\n\nAssistant:"] * 2
    assert known_pairs_texts(pairs)[0] == (
        "User: Hi?\n\nAssistant: Hello.",
        "User: Hi?\n\nAssistant: Go away.",
    )
    for bad, words in [
        ("{nope", "line 1: not JSON"),
        ('{"prompt": "p", "chosen": "c"}', "line 1: 'rejected'"),
        ("\n[1, 2]", "line 2: expected an object"),
    ]:
        with pytest.raises(ApplicationError, match=words):
            known_pairs_parse(text=bad)


# --- a planted-answer dataset -------------------------------------------------------------------


def _planted(*, rater, pairs: int, gold: int, flipped: bool = False, seed: int = 0):
    """A queue whose raters always prefer the polite answer (the rude one when ``flipped``), with
    gold items (answers set by admins) that always name the polite one. The polite response is
    the stored first candidate for some pairs and the second for others."""
    rng = random.Random(seed)
    queue = QueueFactory()
    for i in range(pairs + gold):
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        prompt = PromptFactory(messages=[{"role": "user", "content": f"{a}+{b}? ({i})"}])
        polite, rude = POLITE.format(a + b), RUDE.format(a + b + rng.randint(1, 5))
        polite_first = rng.random() < 0.5
        comparison = make_pair(prompt, (polite, rude) if polite_first else (rude, polite))
        better_first = -2 if polite_first else 2  # negative: the stored first candidate is better
        if i >= pairs:
            QueueItemFactory(
                queue=queue, comparison=comparison, is_gold=True, gold_answer={"preference": better_first}
            )
            continue
        item = QueueItemFactory(queue=queue, comparison=comparison)
        assignment = AssignmentFactory(item=item, rater=rater, status=Assignment.Status.SUBMITTED)
        JudgmentFactory(assignment=assignment, preference=-better_first if flipped else better_first)
    return queue


def _export(client, capture, queue, *, test_fraction: float = 0.3, fmt: str = "trl") -> dict:
    with capture(execute=True):
        response = client.post(
            EXPORTS,
            {"format": fmt, "filters": {"queues": [queue.pk]}, "options": {"test_fraction": test_fraction}},
            format="json",
        )
    assert response.status_code == 201, response.json()
    run = client.get(f"{EXPORTS}{response.json()['id']}/").json()
    assert run["status"] == "succeeded", run["error"]
    return run


@pytest.mark.django_db
def test_snapshot_pairs_read_the_splits_in_the_standard_form(
    researcher_api, rater, django_capture_on_commit_callbacks
):
    queue = _planted(rater=rater, pairs=12, gold=2)
    run = _export(researcher_api, django_capture_on_commit_callbacks, queue)
    export_run = ExportRun.objects.get(pk=run["id"])
    folder = export_run_folder(export_run=export_run)
    train = snapshot_pairs(export_run=export_run, folder=folder, split="train")
    test = snapshot_pairs(export_run=export_run, folder=folder, split="test")
    assert len(train) + len(test) == 12 and train and test
    for chosen, rejected in train + test:
        assert chosen.startswith("User: ") and "\n\nAssistant: Thank you, glad to help: " in chosen
        assert "\n\nAssistant: Shut up, you fool: " in rejected
        assert chosen.split("\n\nAssistant:")[0] == rejected.split("\n\nAssistant:")[0]


# --- the API through HTTP (no training: the task is left queued) ---------------------------------


@pytest.mark.django_db
def test_reward_check_api_permissions_and_conflicts(
    researcher_api, rater_api, admin_api, rater, django_capture_on_commit_callbacks
):
    queue = _planted(rater=rater, pairs=6, gold=1)
    run = _export(researcher_api, django_capture_on_commit_callbacks, queue)
    url = check_url(run["id"])

    assert rater_api.post(url, {}, format="json").status_code == 403
    assert rater_api.get(url).status_code == 403
    assert researcher_api.post(check_url(run["id"] + 999), {}, format="json").status_code == 404

    unfinished = ExportRun.objects.create(name="later", format="trl")
    response = researcher_api.post(check_url(unfinished.pk), {}, format="json")
    assert response.status_code == 409 and "needs a finished (succeeded) export" in response.json()["detail"]

    native = _export(researcher_api, django_capture_on_commit_callbacks, queue, fmt="native")
    response = researcher_api.post(check_url(native["id"]), {}, format="json")
    assert (
        response.status_code == 409
        and "format native has no (chosen, rejected) rows" in response.json()["detail"]
    )

    response = researcher_api.post(url, {"options": {"steps": 0}}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "options.steps"
    response = researcher_api.post(url, {"known_pairs": "{bad"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "known_pairs"
    assert not RewardCheck.objects.exists()  # nothing half-written

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = researcher_api.post(url, {"options": {"steps": 5}}, format="json")
    assert first.status_code == 202, first.json()
    assert len(callbacks) == 1  # enqueued once, after commit
    body = first.json()
    assert (
        body["status"] == "queued" and body["options"]["steps"] == 5 and body["options"]["max_length"] == 256
    )
    second = admin_api.post(url, {}, format="json")
    assert second.status_code == 409 and f"Reward check {body['id']}" in second.json()["detail"]
    listed = researcher_api.get(url).json()
    assert [c["id"] for c in listed] == [body["id"]]


def test_the_check_is_routed_to_the_gpu_queue(settings):
    from labeling.celery import app

    route = app.amqp.router.route({}, "export.tasks.reward_check_task")
    assert route["queue"].name == "gpu"


# --- real training (the bundled model, tiny settings) --------------------------------------------


def _run_check(client, capture, run_id: int, known: str = "") -> dict:
    with capture(execute=True):
        response = client.post(check_url(run_id), {"options": TINY, "known_pairs": known}, format="json")
    assert response.status_code == 202, response.json()
    return client.get(check_url(run_id)).json()[0]


@pytest.mark.model
@pytest.mark.django_db
def test_planted_answers_are_learned_and_a_flipped_export_fails_the_gold_check(
    researcher_api, rater, django_capture_on_commit_callbacks
):
    known = "\n".join(
        json.dumps({"prompt": f"{n}+1?", "chosen": POLITE.format(n + 1), "rejected": RUDE.format(n + 3)})
        for n in range(4)
    )
    queue = _planted(rater=rater, pairs=28, gold=6)
    run = _export(researcher_api, django_capture_on_commit_callbacks, queue)
    check = _run_check(researcher_api, django_capture_on_commit_callbacks, run["id"], known)
    assert check["status"] == "done", check["error"]
    assert check["steps_done"] == check["steps_total"] == TINY["steps"] and check["progress"] == 1.0
    assert check["train_pairs"] + check["test_pairs"] == 28 and check["test_pairs"] >= 4
    assert check["gold_n"] == 6 and check["known_n"] == 4
    assert check["accuracy"] >= 0.8 and check["accuracy_low"] <= check["accuracy"] <= check["accuracy_high"]
    assert check["baseline_accuracy"] is not None
    assert check["gold_accuracy"] >= 0.8 and check["known_accuracy"] >= 0.75
    assert check["verdict"] == "pass"
    assert check["timings"]["train_seconds"] > 0

    flipped_queue = _planted(rater=rater, pairs=28, gold=6, flipped=True, seed=1)
    flipped = _export(researcher_api, django_capture_on_commit_callbacks, flipped_queue)
    check = _run_check(researcher_api, django_capture_on_commit_callbacks, flipped["id"])
    assert check["status"] == "done", check["error"]
    # Consistent labels score well on their own test split: only the gold items show the direction.
    assert check["accuracy"] >= 0.8
    assert check["gold_accuracy"] < 0.5 and check["gold_high"] < 0.5
    assert check["verdict"] == "fail"


# --- the export page ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_page_button_queues_a_check_and_the_row_shows_its_results(
    client, researcher, rater, django_capture_on_commit_callbacks, researcher_api
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    queue = _planted(rater=rater, pairs=6, gold=1)
    run = _export(researcher_api, django_capture_on_commit_callbacks, queue)
    client.force_login(researcher)
    page = client.get("/export/")
    assert b"Run reward check" in page.content

    known = SimpleUploadedFile("known.jsonl", b'{"prompt": "1+1?", "chosen": "2.", "rejected": "3."}\n')
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/export/{run['id']}/reward-check/", {"known_pairs": known})
    assert response.status_code == 302
    check = RewardCheck.objects.get(export_run_id=run["id"])
    assert check.status == "queued" and check.known_pairs[0]["chosen"] == "2."
    page = client.get("/export/")
    assert f"Check {check.pk}: Queued".encode() in page.content and b"Run reward check" not in page.content
    assert b'data-active="1"' in page.content  # the table refreshes itself while the check runs

    RewardCheck.objects.filter(pk=check.pk).update(
        status="done", accuracy=0.9, accuracy_low=0.8, accuracy_high=1.0, baseline_accuracy=0.5,
        test_pairs=10, gold_n=4, gold_accuracy=0.25, gold_low=0.0, gold_high=0.75, verdict="fail",
    )  # fmt: skip
    text = client.get("/export/").content.decode()
    assert "Test accuracy 0.900 [0.800, 1.000] (n=10; untrained 0.500)" in text
    assert "Gold 0.250 [0.000, 0.750] (n=4)" in text and "Direction: <strong>Fail</strong>" in text
    assert "Run reward check" in text  # a finished check can be run again

    client.force_login(rater)
    assert client.post(f"/export/{run['id']}/reward-check/").status_code == 403


@pytest.mark.model
def test_bench_reward_check_prints_its_timings():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command(
        "bench_reward_check",
        "--pairs",
        "10",
        "--steps",
        "2",
        "--max-length",
        "32",
        "--batch-size",
        "2",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert (result["train_pairs"], result["test_pairs"]) == (9, 1)
    assert result["options"]["steps"] == 2 and result["options"]["max_length"] == 32
    timings = result["timings"]
    assert timings["total_seconds"] >= timings["train_seconds"] > 0
    assert result["seconds_per_step"] == pytest.approx(timings["train_seconds"] / 2, abs=0.001)
    assert result["estimated_total_seconds"] > timings["total_seconds"] - timings["train_seconds"]
