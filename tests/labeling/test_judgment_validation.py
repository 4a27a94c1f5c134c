"""What a judgment may say, and which queues may be built: every malformed answer is a 400 naming
the field with nothing written (never a 500, never stored half-right); flags come from one known
set; a queue no item can be built for is refused, saying why."""

from __future__ import annotations

import math

import pytest
from django.test import Client

from labeling.errors import ApplicationError
from labeling.models import Assignment, Criterion, Judgment, Queue, QueueItem
from labeling.services import assignment_claim_next, judgment_submit, queue_create_with_items
from labeling.services.judgments import MAX_RATIONALE, judgment_flags_allowed
from tests.factories import (
    CandidateFactory,
    CriterionFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RubricFactory,
    make_comparison,
)

pytestmark = pytest.mark.django_db


def _lease(rater, *, kind=Queue.Kind.PAIRWISE, k=2) -> Assignment:
    """A lease on a K-response item under a rubric with one criterion of each kind."""
    rubric = RubricFactory()
    CriterionFactory(rubric=rubric, key="quality", kind=Criterion.Kind.LIKERT, required=True)
    CriterionFactory(rubric=rubric, key="style", kind=Criterion.Kind.LIKERT)
    CriterionFactory(rubric=rubric, key="harmful", kind=Criterion.Kind.FLAG)
    CriterionFactory(rubric=rubric, key="note", kind=Criterion.Kind.TEXT)
    queue = QueueFactory(members=[rater], kind=kind, rubric=rubric)
    prompt = PromptFactory()
    generator = GeneratorFactory()
    candidates = [CandidateFactory(prompt=prompt, generator=generator, sample_index=i) for i in range(k)]
    QueueItemFactory(queue=queue, comparison=make_comparison(prompt, candidates))
    lease = assignment_claim_next(rater=rater, queue=queue)
    assert lease is not None
    return lease


def _all(score: int, k: int) -> dict[str, int]:
    return {label: score for label in "ABCDEFGHI"[:k]}


def _refused(response, field: str, lease: Assignment) -> str:
    """The refusal's field, once it is checked that nothing was written."""
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field, response.json()
    assert not Judgment.objects.exists()
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.LEASED
    item = QueueItem.objects.get(pk=lease.item_id)
    assert (item.claimed, item.judged) == (1, 0)
    return str(response.json()["detail"])


@pytest.mark.parametrize(
    "ranking",
    [
        [[["A"]], ["B"], ["C"]],  # a group inside a group (was a 500)
        [["A", 1], ["B"], ["C"]],
        ["A", "B", "C"],
        [],
        [["A"], [], ["B", "C"]],
        [["A"], ["A"], ["B", "C"]],
        [["A"], ["B"]],
        [["A"], ["B"], ["C"], ["D"]],
        {"A": 1},
        "A > B > C",
    ],
)
def test_a_malformed_ranking_is_a_400_naming_it(rater_api, rater, ranking):
    lease = _lease(rater, kind=Queue.Kind.RANKING, k=3)
    response = rater_api.post(
        f"/api/v1/assignments/{lease.pk}/judgment/",
        {"ranking": ranking, "criteria": {"quality": _all(4, 3)}},
        format="json",
    )
    assert "ranking" in _refused(response, "ranking", lease)


def test_a_ranking_with_ties_is_stored(rater_api, rater):
    lease = _lease(rater, kind=Queue.Kind.RANKING, k=3)
    response = rater_api.post(
        f"/api/v1/assignments/{lease.pk}/judgment/",
        {"ranking": [["B"], ["A", "C"]], "criteria": {"quality": _all(4, 3)}},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Judgment.objects.get().ranking == [["B"], ["A", "C"]]


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ({"quality": {"A": 5}}, "criteria.quality.B"),  # required, scored for A only: was accepted
        ({"quality": {"A": 5, "B": 8}}, "criteria.quality.B"),
        ({"quality": {"A": 5, "B": True}}, "criteria.quality.B"),
        ({"quality": {"A": 5, "B": 2, "C": 3}}, "criteria.quality"),
        ({"quality": _all(4, 2), "style": {"A": 0}}, "criteria.style.A"),
        ({"quality": _all(4, 2), "harmful": "yes"}, "criteria.harmful"),
        ({"quality": _all(4, 2), "note": 5}, "criteria.note"),
        ({"quality": _all(4, 2), "nope": 1}, "criteria.nope"),
        ({}, "criteria.quality"),
    ],
)
def test_criteria_answers_are_checked_per_kind(rater_api, rater, criteria, field):
    lease = _lease(rater)
    response = rater_api.post(
        f"/api/v1/assignments/{lease.pk}/judgment/", {"preference": 1, "criteria": criteria}, format="json"
    )
    assert _refused(response, field, lease)  # a message that says what is wrong


def test_an_optional_likert_may_score_some_responses(rater_api, rater):
    lease = _lease(rater)
    response = rater_api.post(
        f"/api/v1/assignments/{lease.pk}/judgment/",
        {"preference": 1, "criteria": {"quality": _all(6, 2), "style": {"B": 3}}},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Judgment.objects.get().criteria == {"quality": {"A": 6, "B": 6}, "style": {"B": 3}}


def test_the_allowed_flags_are_both_bad_the_content_categories_and_the_rubrics_flag_keys(rater):
    lease = _lease(rater)
    assert judgment_flags_allowed(lease.item.queue.rubric) == [
        "both_bad",
        "cw:violence",
        "cw:self_harm",
        "cw:sexual",
        "cw:hate",
        "cw:crime",
        "cw:other",
        "harmful",
    ]


@pytest.mark.parametrize(
    ("preference", "flags", "field"),
    [
        (1, ["offensive"], "flags[0]"),
        (1, ["harmful", "cw:gore"], "flags[1]"),
        (1, ["cw:"], "flags[0]"),
        (1, ["style"], "flags[0]"),  # a Likert criterion's key is no flag
        (1, [""], "flags"),
        (1, "both_bad", "flags"),
        (1, ["both_bad"], "flags"),  # "both are bad" is a tie
    ],
)
def test_an_unknown_or_inconsistent_flag_is_a_400_naming_it(rater_api, rater, preference, flags, field):
    lease = _lease(rater)
    response = rater_api.post(
        f"/api/v1/assignments/{lease.pk}/judgment/",
        {"preference": preference, "criteria": {"quality": _all(4, 2)}, "flags": flags},
        format="json",
    )
    _refused(response, field, lease)
    if field.startswith("flags["):
        assert "allowed: both_bad, cw:violence" in response.json()["detail"]


def test_known_flags_are_stored_sorted_once(rater_api, rater):
    lease = _lease(rater)
    response = rater_api.post(
        f"/api/v1/assignments/{lease.pk}/judgment/",
        {
            "preference": 0,
            "criteria": {"quality": _all(4, 2)},
            "flags": ["harmful", "cw:violence", "both_bad", "harmful"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Judgment.objects.get().flags == ["both_bad", "cw:violence", "harmful"]


def test_long_text_is_refused_not_cut(rater):
    lease = _lease(rater)
    with pytest.raises(ApplicationError) as refused:
        judgment_submit(
            assignment=lease,
            preference=1,
            criteria={"quality": _all(4, 2)},
            rationale="x" * (MAX_RATIONALE + 1),
        )
    assert refused.value.field == "rationale" and f"at most {MAX_RATIONALE}" in refused.value.message
    assert not Judgment.objects.exists()


@pytest.mark.parametrize("seconds", [math.inf, math.nan, -1.0, "7", True])
def test_active_seconds_must_be_a_finite_non_negative_number(rater, seconds):
    lease = _lease(rater)
    with pytest.raises(ApplicationError) as refused:
        judgment_submit(
            assignment=lease, preference=1, criteria={"quality": _all(4, 2)}, active_seconds=seconds
        )
    assert refused.value.field == "active_seconds"
    assert not Judgment.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"preference": "²"}, "preference: required"),
        (
            {"preference": "1", "criterion-quality-A": "²", "criterion-quality-B": "3"},
            "criteria.quality.A: required",
        ),
        (
            {"preference": "1", "criterion-quality-A": "9" * 40, "criterion-quality-B": "3"},
            "must be an integer 1..7",
        ),
        (
            {
                "preference": "0",
                "criterion-quality-A": "4",
                "criterion-quality-B": "4",
                "active_seconds": "inf",
            },
            None,
        ),
    ],
)
def test_the_judging_page_reads_only_ascii_digits(rater, fields, message):
    """Unicode digits passed ``isdigit()`` and made ``int()`` raise: a 500 on the page."""
    lease = _lease(rater)
    client = Client()
    client.force_login(rater)
    response = client.post(f"/rate/assignment/{lease.pk}/", fields)
    if message is None:  # "inf" seconds of work is no time: the answer is kept without it
        assert response.status_code == 302
        assert Judgment.objects.get().active_seconds is None
        return
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Judgment.objects.exists()


# ------------------------------------------------------------------------------ new queues


def _prompts(n: int, k: int, tag: str = "t") -> list:
    generator = GeneratorFactory()
    prompts = PromptFactory.create_batch(n, tags=[tag])
    for prompt in prompts:
        for i in range(k):
            CandidateFactory(prompt=prompt, generator=generator, sample_index=i)
    return prompts


def test_a_queue_no_item_can_be_built_for_is_a_400_saying_why(admin_api):
    _prompts(2, 1)
    rubric = RubricFactory()
    response = admin_api.post(
        "/api/v1/queues/", {"name": "thin", "rubric": str(rubric.pk), "tags": ["t"]}, format="json"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == "prompts"
    assert "no item could be built: each item needs 2 different responses" in body["detail"]
    assert "none of the 2 prompt(s) chosen has that many" in body["detail"]
    assert not Queue.objects.exists()


def test_the_refusal_counts_prompts_whose_responses_repeat(admin_api):
    (prompt,) = _prompts(1, 0)
    generator = GeneratorFactory()
    for i in range(3):
        CandidateFactory(prompt=prompt, generator=generator, sample_index=i, text="Same text.")
    response = admin_api.post(
        "/api/v1/queues/", {"name": "same", "rubric": str(RubricFactory().pk), "tags": ["t"]}, format="json"
    )
    assert response.status_code == 400
    assert "1 of them have enough responses, but too few different texts" in response.json()["detail"]
    assert not Queue.objects.exists()


@pytest.mark.parametrize(("size", "status"), [(1, 400), (2, 400), (3, 201), (9, 201), (10, 400)])
def test_a_ranking_queue_ranks_3_to_9_responses(admin_api, size, status):
    _prompts(1, 9)
    payload = {
        "name": "rank",
        "kind": "ranking",
        "size": size,
        "rubric": str(RubricFactory().pk),
        "tags": ["t"],
    }
    response = admin_api.post("/api/v1/queues/", payload, format="json")
    assert response.status_code == status, response.content
    if status == 400:
        assert response.json()["field"] == "size"
        assert not Queue.objects.exists()
    else:
        assert Queue.objects.get().items.get().comparison.size == size


def test_the_service_refuses_an_empty_choice_of_prompts(admin_user):
    with pytest.raises(ApplicationError) as refused:
        queue_create_with_items(name="empty", rubric=RubricFactory(), prompts=[])
    assert refused.value.field == "prompts" and "no prompts chosen" in refused.value.message
    assert not Queue.objects.exists()


def test_only_the_demo_may_build_a_queue_before_its_pairs_exist(admin_user):
    """``manage.py demo --samples 1`` makes one response per prompt; a later run adds the pairs."""
    prompts = _prompts(2, 1)
    created = queue_create_with_items(name="demo", rubric=RubricFactory(), prompts=prompts, allow_empty=True)
    assert created.items.added == 0 and Queue.objects.get().name == "demo"
