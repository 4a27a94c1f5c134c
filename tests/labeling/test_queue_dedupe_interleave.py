"""Queues show one copy of each text (dedupe, with the left-out counts in the API's answer) and hand
out items so that a rater does not get the same prompt twice in a row (interleave)."""

from __future__ import annotations

import itertools

import pytest

from comparisons.dedupe import same_text
from comparisons.models import ComparisonDuplicate
from comparisons.selectors import comparison_candidates
from labeling.models import Queue, QueueItem
from labeling.services import assignment_claim_next, judgment_submit, queue_add_prompts
from tests.factories import CandidateFactory, GeneratorFactory, PromptFactory, QueueFactory, RubricFactory

pytestmark = pytest.mark.django_db

SAME = "Paris is the capital of France."
QUEUE_FIELDS = {
    "id",
    "name",
    "kind",
    "status",
    "overlap",
    "lease_seconds",
    "priority",
    "rubric",
    "guidelines",
    "gold_rate",
    "skip_policy",
    "pairing",
    "max_open_leases",
    "qualification",
    "items",
}


def _prompt(texts, *, tag="t"):
    prompt = PromptFactory(tags=[tag])
    generator = GeneratorFactory()
    for i, text in enumerate(texts):
        CandidateFactory(prompt=prompt, generator=generator, sample_index=i, text=text)
    return prompt


def _distinct(n, tag="t"):
    """A prompt with ``n`` candidates of different texts (n-choose-2 pairs)."""
    return _prompt([f"Answer {i}." for i in range(n)], tag=tag)


def _create(admin_api, rater, **payload):
    body = {"name": "q", "rubric": str(RubricFactory().pk), "tags": ["t"], "members": [rater.username]}
    return admin_api.post("/api/v1/queues/", {**body, **payload}, format="json")


def _claim_rest(queue: Queue, rater) -> list[int]:
    """The prompt of every item left, in the order one rater is handed them by the claim service."""
    order = []
    while (assignment := assignment_claim_next(rater=rater, queue=queue)) is not None:
        order.append(assignment.item.comparison.prompt_id)
        judgment_submit(assignment=assignment, preference=-1)
    return order


def _claim_all(queue: Queue, rater) -> list[int]:
    order = _claim_rest(queue, rater)
    assert len(order) == queue.items.count()
    return order


def _back_to_back(order: list[int]) -> int:
    return sum(a == b for a, b in itertools.pairwise(order))


def _fewest_possible(order: list[int]) -> int:
    """Back-to-back items no order can avoid: what the most frequent prompt has beyond the others + 1."""
    most = max(order.count(p) for p in set(order))
    return max(0, most - (len(order) - most) - 1)


# --------------------------------------------------------------------------------- dedupe


def test_a_queue_of_duplicate_candidates_has_no_identical_pairs_and_says_what_it_left_out(admin_api, rater):
    demo_like = _prompt([SAME, SAME + "\n", "Lyon.", " " + SAME])  # 3 of 4 the same sentence
    _distinct(3)

    response = _create(admin_api, rater)

    assert response.status_code == 201, response.content
    body = response.json()
    assert QUEUE_FIELDS <= set(body)  # the public answer only grows
    assert body["left_out"] == {"pairs": 5, "duplicates": 2, "prompts": 0}
    assert body["items"] == 1 + 3
    queue = Queue.objects.get(pk=body["id"])
    for item in queue.items.select_related("comparison"):
        a, b = (c.text for c in comparison_candidates(item.comparison))
        assert not same_text(a, b)
    (kept, *_) = demo_like.candidates.order_by("id")
    copies = ComparisonDuplicate.objects.filter(comparison__queue_items__queue=queue)
    assert sorted(copies.values_list("kept_id", flat=True)) == [kept.pk, kept.pk]


def test_dedupe_off_keeps_identical_pairs(admin_api, rater):
    _prompt([SAME, SAME, "Lyon."])

    response = _create(admin_api, rater, dedupe="off")

    assert response.status_code == 201, response.content
    assert response.json()["left_out"] == {"pairs": 0, "duplicates": 0, "prompts": 0}
    assert response.json()["items"] == 3


def test_similar_dedupe_with_a_threshold(admin_api, rater):
    long = "one two three four five six seven eight nine ten"
    _prompt([long, long.replace("ten", "eleven"), "Something else."])  # 9 of 10 words alike: 0.9

    strict = _create(admin_api, rater, name="strict", dedupe="similar", similarity=0.95)
    loose = _create(admin_api, rater, name="loose", dedupe="similar")

    assert (strict.json()["items"], strict.json()["left_out"]["duplicates"]) == (3, 0)
    assert (loose.json()["items"], loose.json()["left_out"]) == (
        1,
        {"pairs": 2, "duplicates": 1, "prompts": 0},
    )


def test_ranking_queue_keeps_one_copy_of_each_text_and_records_the_rest(admin_api, rater):
    prompt = _prompt(["One.", "One.", "Two.", "Three.", "Four."])

    response = _create(admin_api, rater, kind="ranking", size=4)

    assert response.status_code == 201, response.content
    assert response.json()["left_out"] == {"pairs": 0, "duplicates": 1, "prompts": 0}
    item = QueueItem.objects.get(queue_id=response.json()["id"])
    first, copy = prompt.candidates.order_by("id")[:2]
    assert [c.text for c in comparison_candidates(item.comparison)] == ["One.", "Two.", "Three.", "Four."]
    assert list(item.comparison.duplicates.values_list("kept_id", "candidate_id")) == [(first.pk, copy.pk)]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"dedupe": "fuzzy"}, "dedupe"),
        ({"dedupe": "exact", "similarity": 0.5}, "similarity"),
        ({"dedupe": "similar", "similarity": 2}, "similarity"),
        ({"interleave": "sometimes"}, "interleave"),
    ],
)
def test_bad_build_settings_name_the_field_and_create_nothing(admin_api, rater, payload, field):
    _distinct(3)

    response = _create(admin_api, rater, **payload)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Queue.objects.exists()


def test_adding_items_later_reports_what_dedupe_left_out(admin_api, rater):
    _distinct(3)
    queue = Queue.objects.get(pk=_create(admin_api, rater).json()["id"])
    _prompt([SAME, SAME, "Lyon."], tag="later")

    response = admin_api.post(f"/api/v1/queues/{queue.pk}/items/", {"tags": ["later"]}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert QUEUE_FIELDS <= set(body)
    assert (body["added"], body["left_out"]) == (1, {"pairs": 2, "duplicates": 1, "prompts": 0})


# ----------------------------------------------------------------------------- interleave


@pytest.mark.parametrize(
    ("candidates_per_prompt", "unavoidable"),
    [
        ((4, 4, 3, 2), 0),  # 6 + 6 + 3 + 1 pairs
        ((3, 3), 0),
        ((5, 3, 3, 3), 0),  # 10 pairs of one prompt, 9 of others to separate them
        ((2, 2, 2), 0),
        ((5, 2), 8),  # 10 pairs and 1: one separation only
        ((5, 2, 2), 7),
        ((6, 3), 11),  # 15 and 3
    ],
)
def test_one_rater_never_gets_one_prompt_twice_in_a_row_unless_nothing_else_is_left(
    admin_api, rater, candidates_per_prompt, unavoidable
):
    for n in candidates_per_prompt:
        _distinct(n)
    response = _create(admin_api, rater)
    assert response.status_code == 201, response.content

    order = _claim_all(Queue.objects.get(pk=response.json()["id"]), rater)

    assert _fewest_possible(order) == unavoidable
    assert _back_to_back(order) == unavoidable


def test_interleaving_holds_for_items_added_later(admin_api, rater):
    _distinct(3, tag="first")
    _distinct(3, tag="first")
    created = _create(admin_api, rater, tags=["first"])
    queue = Queue.objects.get(pk=created.json()["id"])
    order = []
    for _ in range(2):  # a rater is already under way
        assignment = assignment_claim_next(rater=rater, queue=queue)
        assert assignment is not None
        order.append(assignment.item.comparison.prompt_id)
        judgment_submit(assignment=assignment, preference=1)
    _distinct(3, tag="later")
    _distinct(4, tag="later")

    added = admin_api.post(f"/api/v1/queues/{queue.pk}/items/", {"tags": ["later"]}, format="json")
    assert added.json()["added"] == 9
    order += _claim_rest(queue, rater)

    assert len(order) == 15
    assert _back_to_back(order) == 0


def test_interleave_off_keeps_a_prompts_items_together(admin_api, rater):
    prompts = [_distinct(3), _distinct(3)]

    response = _create(admin_api, rater, interleave=False)

    queue = Queue.objects.get(pk=response.json()["id"])
    assert _claim_all(queue, rater) == [prompts[0].pk] * 3 + [prompts[1].pk] * 3
    assert set(queue.items.values_list("priority", flat=True)) == {0}


def test_adaptive_queues_keep_their_own_order(rater):
    queue = QueueFactory(pairing=Queue.Pairing.ADAPTIVE, members=[rater])

    queue_add_prompts(queue=queue, prompts=[_distinct(3), _distinct(3)])

    # queue_reprioritize set the priorities (all equal before any judgment): no interleaving rounds.
    assert len(set(queue.items.values_list("priority", flat=True))) == 1


# ------------------------------------------------------------------ settings kept on the queue


def test_the_build_settings_are_kept_and_used_for_prompts_added_later(admin_api, rater):
    _prompt([SAME, "Lyon."], tag="first")
    body = {"tags": ["first"], "dedupe": "off", "interleave": False}
    created = _create(admin_api, rater, **body).json()
    assert (created["dedupe"], created["similarity"], created["interleave"]) == ("off", None, False)
    _prompt([SAME, SAME, "Nice."], tag="later")
    added = admin_api.post(
        f"/api/v1/queues/{created['id']}/items/", {"tags": ["later"]}, format="json"
    ).json()
    # still "off": the two identical texts are paired too
    assert added["left_out"] == {"pairs": 0, "duplicates": 0, "prompts": 0} and added["added"] == 3
    assert set(QueueItem.objects.filter(queue_id=created["id"]).values_list("priority", flat=True)) == {0}


def test_the_new_queue_page_builds_with_them_and_says_what_it_left_out(client, admin_user, rater):
    _prompt([SAME, SAME + " ", "Lyon."], tag="page")
    client.force_login(admin_user)
    response = client.post(
        "/manage/queues/new/",
        {
            "name": "from the page",
            "kind": "pairwise",
            "rubric": RubricFactory().pk,
            "overlap": 1,
            "pairing": "all_pairs",
            "prompts_by": "tags",
            "tags": "page",
            "max_open_leases": 1,
            "skip_policy": "others",
            "gold_rate": 0,
            "priority": 0,
            "dedupe": "exact",
            "interleave": "on",
        },
        follow=True,
    )
    body = response.content.decode()
    assert "created with 1 items" in body
    assert "Left out: 2 pair(s) of identical or repeated texts; 1 repeated response(s)" in body
    queue = Queue.objects.get(name="from the page")
    assert (queue.dedupe, queue.interleave) == ("exact", True)
