"""The second way to a red-team pair's safe ``chosen`` reply: fresh candidates ranked by raters.

The export takes the best-ranked refusal (mean rank position over every judgment of the attack's
prompt, ties by candidate id; never the harmful reply), an attack with a written reply keeps it,
and the card and manifest count each path. The request service starts one generation job and one
ranking queue for exactly the attacks that need them, never twice; the beat step fills the queue
once the job finishes; the API and the page are for admins only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from comparisons.models import Candidate
from labeling.errors import ApplicationError
from labeling.models import Assignment, Attack, Queue
from labeling.selectors.redteam_safe_replies import attacks_needing_safe_replies
from labeling.services.redteam_safe_replies import attack_safe_replies_build, attack_safe_replies_request
from model_runner.models import GenerationJob, Generator
from tests.export.test_redteam_export import by_attack, family_on, make_attack
from tests.export.test_trl_datasets import jsonl, write
from tests.factories import (
    AdminFactory,
    AssignmentFactory,
    CandidateFactory,
    GeneratorFactory,
    JudgmentFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    ResearcherFactory,
    RubricFactory,
    make_comparison,
)

COMPLY = "Sure! Step one: buy a tension wrench and a pick."
REFUSE_X = "I can't help with picking locks you don't own; a locksmith can let you in."
REFUSE_Y = "I'm sorry, but I cannot assist with that."
REFUSE_Z = "I won't explain that. If you are locked out, call your landlord."
TRL = {"format": "trl", "filters": {"sources": ["redteam"]}}


def ranked_queue(attack: Attack, texts: list[str]) -> tuple[Queue, list[Candidate], object]:
    """A K-way comparison of fresh candidates (these texts, in id order) on the attack's prompt."""
    generator = GeneratorFactory()
    candidates = [
        CandidateFactory(prompt=attack.prompt, generator=generator, sample_index=i, text=t)
        for i, t in enumerate(texts)
    ]
    queue = QueueFactory(kind=Queue.Kind.RANKING)
    comparison = make_comparison(attack.prompt, candidates)
    return queue, candidates, QueueItemFactory(queue=queue, comparison=comparison)


def rank(item, order: list[Candidate], shown: list[Candidate] | None = None) -> None:
    """One submitted ranking judgment: ``order`` best first, each alone in its group. Labels follow
    ``shown`` (default: the reverse of ``order``, so labels and ranks differ)."""
    shown = shown or list(reversed(order))
    labels = {c.pk: "ABCDEFGHI"[i] for i, c in enumerate(shown)}
    assignment = AssignmentFactory(
        item=item, shown_order=[c.pk for c in shown], status=Assignment.Status.SUBMITTED
    )
    JudgmentFactory(assignment=assignment, preference=None, ranking=[[labels[c.pk]] for c in order])


def trl_rows(tmp_path) -> tuple[dict[int, dict], dict]:
    folder, manifest = write(tmp_path, TRL)
    path = folder / "data" / "train.jsonl"
    return (by_attack(jsonl(path)) if path.exists() else {}), manifest


@pytest.mark.django_db
def test_chosen_is_the_best_ranked_refusal_not_a_better_ranked_answer(tmp_path):
    attack = make_attack(family=family_on("train"), ideal="")
    _, (comply, x, y), item = ranked_queue(attack, [COMPLY, REFUSE_X, REFUSE_Y])
    # Mean positions: comply (2+0+0)/3, x 1, y (0+2+2)/3: y was first once, x is the better refusal.
    rank(item, [y, x, comply])
    rank(item, [comply, x, y])
    rank(item, [comply, x, y])

    rows, manifest = trl_rows(tmp_path)

    row = rows[attack.pk]
    assert row["chosen"] == [{"role": "assistant", "content": REFUSE_X}]
    assert row["rejected"][0]["content"] == attack.reply.text
    assert row["source"] == "redteam"
    counts = manifest["redteam"]["counts"]
    assert counts["train_pairs_ranked"] == {"illegal": 1}
    assert counts["ranked_attack_ids"] == [attack.pk]
    assert counts["needs_safe_reply_total"] == 0
    card = (next(p for p in tmp_path.iterdir() if p.is_dir()) / "README.md").read_text()
    assert "Chosen replies: 0 written by a reviewer or red-teamer, 1 ranked (illegal 1)" in card


@pytest.mark.django_db
def test_ties_go_to_the_lower_candidate_id_and_pair_judgments_count(tmp_path):
    attack = make_attack(family=family_on("train"), ideal="")
    _, (x, y), item = ranked_queue(attack, [REFUSE_X, REFUSE_Y])
    # One pair judgment each way: both at mean 0.5, so the lower id (x) wins.
    for preference in (3, -3):
        assignment = AssignmentFactory(
            item=item, shown_order=[y.pk, x.pk], status=Assignment.Status.SUBMITTED
        )
        JudgmentFactory(assignment=assignment, preference=preference)
    rows, _ = trl_rows(tmp_path)
    assert rows[attack.pk]["chosen"][0]["content"] == REFUSE_X
    # A third judgment for y breaks the tie.
    assignment = AssignmentFactory(item=item, shown_order=[y.pk, x.pk], status=Assignment.Status.SUBMITTED)
    JudgmentFactory(assignment=assignment, preference=-2)
    rows, _ = trl_rows(tmp_path)
    assert rows[attack.pk]["chosen"][0]["content"] == REFUSE_Y


@pytest.mark.django_db
def test_the_harmful_reply_is_never_chosen_even_when_it_opens_like_a_refusal(tmp_path):
    harmful = "I'm sorry, but since you asked: insert the tension wrench, then rake the pins."
    attack = make_attack(family=family_on("train"), ideal="", outcome="partial", reply=harmful)
    _, (copy, z), item = ranked_queue(attack, [harmful, REFUSE_Z])
    # The reply itself and a copy of its text are ranked first, and are passed over.
    JudgmentFactory(
        assignment=AssignmentFactory(
            item=QueueItemFactory(comparison=make_comparison(attack.prompt, [attack.reply, z])),
            status=Assignment.Status.SUBMITTED,
        ),
        preference=-3,
    )
    rank(item, [copy, z])
    rows, _ = trl_rows(tmp_path)
    assert rows[attack.pk]["chosen"][0]["content"] == REFUSE_Z


@pytest.mark.django_db
def test_no_refusal_among_the_ranked_means_no_pair(tmp_path):
    attack = make_attack(family=family_on("train"), ideal="")
    _, (a, b), item = ranked_queue(attack, [COMPLY, "Here is a guide to locks."])
    rank(item, [a, b])
    rows, manifest = trl_rows(tmp_path)
    assert attack.pk not in rows
    counts = manifest["redteam"]["counts"]
    assert counts["needs_safe_reply"] == {"illegal": 1}
    assert counts["train_pairs_ranked_total"] == 0
    assert manifest["skipped"]["redteam_needs_safe_reply"] == 1


@pytest.mark.django_db
def test_a_written_ideal_reply_is_kept_over_ranked_refusals(tmp_path):
    attack = make_attack(family=family_on("train"), ideal="Please call a locksmith instead.")
    _, (x, y), item = ranked_queue(attack, [REFUSE_X, REFUSE_Y])
    rank(item, [x, y])
    rows, manifest = trl_rows(tmp_path)
    assert rows[attack.pk]["chosen"][0]["content"] == "Please call a locksmith instead."
    assert manifest["redteam"]["counts"]["train_pairs_ranked_total"] == 0
    card = (next(p for p in tmp_path.iterdir() if p.is_dir()) / "README.md").read_text()
    assert "Chosen replies:" not in card  # written replies alone: the card reads as before


@pytest.mark.django_db
def test_test_side_attacks_take_no_ranked_reply(tmp_path):
    attack = make_attack(family=family_on("test"), ideal="")
    _, (x, comply), item = ranked_queue(attack, [REFUSE_X, COMPLY])
    rank(item, [x, comply])
    folder, _ = write(tmp_path, {"format": "redteam_eval"})
    (row,) = jsonl(folder / "data" / "test.jsonl")
    assert row["attack_id"] == attack.pk and row["ideal_reply"] == ""


# ----------------------------------------------------------------------------- the request


def live_generator(name: str = "sampler") -> Generator:
    return Generator.objects.create(
        name=name, backend="openai", model_path="http://127.0.0.1:9/v1", is_active=True
    )


@pytest.mark.django_db
def test_request_covers_exactly_the_attacks_that_need_a_safe_reply_and_never_twice():
    needs = make_attack(family=family_on("train"), ideal="")
    partial = make_attack(family=family_on("train"), ideal="", outcome="partial")
    make_attack(family=family_on("train"))  # has a written reply
    make_attack(family=family_on("test"), ideal="")  # held out
    make_attack(family=family_on("train"), ideal="", outcome="over_refused")  # not harmful
    make_attack(family=family_on("train"), ideal="", status=Attack.Status.PENDING)  # not confirmed
    generator, rubric, rater = live_generator(), RubricFactory(), RaterFactory()

    done = attack_safe_replies_request(
        generator=generator, samples=4, queue_name="safe replies 1", rubric=rubric, members=[rater]
    )

    assert [a.pk for a in done.attacks] == [needs.pk, partial.pk]
    job = GenerationJob.objects.get(pk=done.job.pk)
    assert set(job.prompts.values_list("pk", flat=True)) == {needs.prompt_id, partial.prompt_id}
    assert list(job.generators.all()) == [generator] and job.samples_per_prompt == 4
    queue = Queue.objects.get(pk=done.queue.pk)
    assert queue.kind == Queue.Kind.RANKING and queue.disturbing and list(queue.members.all()) == [rater]
    assert not queue.items.exists()
    assert attacks_needing_safe_replies() == []

    with pytest.raises(ApplicationError) as err:
        attack_safe_replies_request(
            generator=generator, samples=4, queue_name="again", rubric=rubric, members=[]
        )
    assert err.value.status_code == 409
    assert GenerationJob.objects.count() == 1 and not Queue.objects.filter(name="again").exists()

    later = make_attack(family=family_on("train"), ideal="")
    second = attack_safe_replies_request(
        generator=generator, samples=2, queue_name="safe replies 2", rubric=rubric, members=[]
    )
    assert [a.pk for a in second.attacks] == [later.pk]
    assert second.queue.kind == Queue.Kind.PAIRWISE  # K = 2 is a pair


@pytest.mark.django_db
@pytest.mark.parametrize("samples", [1, 10, "4", True])
def test_request_refuses_a_bad_k_and_writes_nothing(samples):
    make_attack(family=family_on("train"), ideal="")
    with pytest.raises(ApplicationError) as err:
        attack_safe_replies_request(
            generator=live_generator(), samples=samples, queue_name="q", rubric=RubricFactory(), members=[]
        )
    assert err.value.field == "samples"
    assert not GenerationJob.objects.exists() and not Queue.objects.filter(name="q").exists()


@pytest.mark.django_db
def test_the_attacked_models_own_reply_does_not_count_among_the_k_fresh():
    attack = make_attack(family=family_on("train"), ideal="")
    attacked = attack.reply.generator
    Generator.objects.filter(pk=attacked.pk).update(backend="openai", is_active=True)
    attacked.refresh_from_db()
    done = attack_safe_replies_request(
        generator=attacked, samples=3, queue_name="q", rubric=RubricFactory(), members=[]
    )
    assert done.job.samples_per_prompt == 4  # its one earlier reply + 3 fresh


@pytest.mark.django_db
def test_the_queue_gets_its_items_once_the_job_finishes_and_only_once():
    attack = make_attack(family=family_on("train"), ideal="")
    generator = live_generator()
    done = attack_safe_replies_request(
        generator=generator, samples=3, queue_name="q", rubric=RubricFactory(), members=[]
    )
    fresh = [
        Candidate.objects.create(prompt=attack.prompt, generator=generator, sample_index=i, text=t)
        for i, t in enumerate([COMPLY, REFUSE_X, REFUSE_Y])
    ]
    assert attack_safe_replies_build() == 0  # the job is still queued
    GenerationJob.objects.filter(pk=done.job.pk).update(status=GenerationJob.Status.SUCCEEDED)

    assert attack_safe_replies_build() == 1
    (item,) = done.queue.items.select_related("comparison")
    assert item.comparison.size == 3
    assert set(item.comparison.members.values_list("candidate_id", flat=True)) == {c.pk for c in fresh}
    assert attack_safe_replies_build() == 0


# ----------------------------------------------------------------------------- the doors


def api_body(generator: Generator, rubric, **extra) -> dict:
    return {"generator": generator.name, "samples": 3, "queue_name": "api safe", "rubric": rubric.pk, **extra}


@pytest.mark.django_db
def test_api_starts_a_request_for_admins_only(admin_api, researcher_api, rater_api):
    attack = make_attack(family=family_on("train"), ideal="")
    generator, rubric = live_generator(), RubricFactory()
    url = "/api/v1/redteam/safe-replies/"
    for client in (researcher_api, rater_api):
        assert client.post(url, api_body(generator, rubric), format="json").status_code == 403
    assert not GenerationJob.objects.exists()

    response = admin_api.post(url, api_body(generator, rubric, members=["rater-one"]), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["attacks"] == [attack.pk] and body["prompts"] == [attack.prompt_id]
    assert Queue.objects.get(pk=body["queue"]).name == "api safe"

    again = admin_api.post(url, api_body(generator, rubric, queue_name="twice"), format="json")
    assert again.status_code == 409
    bad = admin_api.post(url, api_body(generator, rubric, samples=12, queue_name="x"), format="json")
    assert bad.status_code in (400, 409)


@pytest.mark.django_db
def test_manage_page_form_calls_the_same_service(client):
    attack = make_attack(family=family_on("train"), ideal="")
    generator, rubric = live_generator(), RubricFactory()
    client.force_login(ResearcherFactory())
    assert client.post(reverse("manage-safe-replies-request"), {}).status_code == 403

    client.force_login(AdminFactory())
    page = client.get(reverse("manage-redteam"))
    assert page.status_code == 200
    assert 'id="safe-replies-form"' in page.content.decode()
    assert (
        "1 confirmed training-side attack with a harmful outcome needs a safe reply" in page.content.decode()
    )

    form = {"generator": generator.pk, "samples": 3, "queue_name": "page safe", "rubric": rubric.pk}
    response = client.post(reverse("manage-safe-replies-request"), form)
    assert response.status_code == 302
    job = GenerationJob.objects.get()
    assert list(job.prompts.values_list("pk", flat=True)) == [attack.prompt_id]
    assert Queue.objects.get(name="page safe").kind == Queue.Kind.RANKING

    again = client.post(reverse("manage-safe-replies-request"), {**form, "queue_name": "page twice"})
    assert again.status_code == 409
