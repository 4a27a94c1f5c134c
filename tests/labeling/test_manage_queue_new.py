"""``/manage/queues/new/``: admins create a queue and its items from a form, as ``POST queues/`` does."""

from __future__ import annotations

import pytest

from labeling.models import Queue
from tests.factories import (
    CandidateFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    RaterFactory,
    RubricFactory,
)

pytestmark = pytest.mark.django_db

URL = "/manage/queues/new/"


def _prompts_with_candidates(n: int, k: int, **prompt_fields):
    generator = GeneratorFactory(name="gen-a")
    prompts = PromptFactory.create_batch(n, **prompt_fields)
    for prompt in prompts:
        for i in range(k):
            CandidateFactory(prompt=prompt, generator=generator, sample_index=i)
    return prompts


def _form(rubric_obj, **fields):
    return {
        "name": "Helpfulness, batch 1",
        "kind": "pairwise",
        "rubric": rubric_obj.pk,
        "overlap": 3,
        "pairing": "all_pairs",
        "prompts_by": "all",
        "lease_seconds": "",
        "max_open_leases": 1,
        "skip_policy": "others",
        "gold_rate": 0,
        "priority": 0,
        **fields,
    }


def test_admin_creates_a_queue_from_tagged_prompts(client, admin_user):
    client.force_login(admin_user)
    rubric = RubricFactory(name="hhh")
    _prompts_with_candidates(2, 3, tags=["chat"])
    _prompts_with_candidates(1, 3, tags=["code"])
    raters = [RaterFactory(username="ana"), RaterFactory(username="ben")]

    page = client.get("/manage/queues/").content.decode()
    assert f'href="{URL}"' in page
    form_page = client.get(URL).content.decode()
    assert 'id="queue-form"' in form_page and "ana" in form_page

    response = client.post(
        URL,
        _form(
            rubric,
            prompts_by="tags",
            tags="chat",
            members=[r.pk for r in raters],
            guidelines="Prefer **helpful** answers.",
        ),
    )

    queue = Queue.objects.get(name="Helpfulness, batch 1")
    assert response.status_code == 302 and response["Location"] == f"/manage/queues/{queue.pk}/"
    assert queue.items.count() == 6  # 2 prompts x C(3, 2) pairs
    assert sorted(u.username for u in queue.members.all()) == ["ana", "ben"]
    assert (queue.overlap, queue.rubric, queue.guidelines) == (3, rubric, "Prefer **helpful** answers.")
    assert (
        "Queue &#x27;Helpfulness, batch 1&#x27; created with 6 items."
        in client.get(response["Location"]).content.decode()
    )


def test_a_ranking_queue_takes_its_size(client, admin_user):
    client.force_login(admin_user)
    rubric = RubricFactory()
    _prompts_with_candidates(2, 4)
    response = client.post(URL, _form(rubric, name="rank", kind="ranking", size=4))
    assert response.status_code == 302
    queue = Queue.objects.get(name="rank")
    assert queue.kind == Queue.Kind.RANKING and queue.items.count() == 2


def test_prompts_without_enough_candidates_are_refused_saying_why(client, admin_user):
    client.force_login(admin_user)
    rubric = RubricFactory()
    _prompts_with_candidates(2, 1)
    response = client.post(URL, _form(rubric, name="thin"))
    html = response.content.decode()
    assert response.status_code == 400
    assert "no item could be built: each item needs 2 different responses" in html
    assert "none of the 2 prompt(s) chosen has that many" in html
    assert not Queue.objects.filter(name="thin").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "taken"}, "name: a queue named &quot;taken&quot; exists"),
        ({"prompts_by": "tags", "tags": "nope"}, "tags: no prompt has the tag &quot;nope&quot;"),
        ({"prompts_by": "ids", "ids": "424242"}, "prompts: unknown prompt id: 424242"),
        ({"kind": "pairwise", "size": 3}, "size: a pairwise queue compares 2 responses"),
        ({"kind": "ranking", "pairing": "adaptive"}, "pairing: adaptive pairing is for pairwise queues"),
        ({"overlap": 0}, "Ensure this value is greater than or equal to 1."),
        ({"rubric": ""}, "This field is required."),
    ],
)
def test_bad_input_is_named_on_the_form_and_nothing_is_created(client, admin_user, fields, message):
    client.force_login(admin_user)
    rubric = RubricFactory()
    QueueFactory(name="taken")
    _prompts_with_candidates(1, 2)
    response = client.post(URL, _form(rubric, **fields))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Queue.objects.count() == 1  # only "taken"


def test_only_admins_create_queues(client, researcher, rater):
    client.force_login(researcher)
    assert client.get(URL).status_code == 403
    assert f'href="{URL}"' not in client.get("/manage/queues/").content.decode()
    client.force_login(rater)
    assert client.get(URL).status_code == 403


def test_queues_are_not_added_in_the_django_admin(client, admin_user):
    """A queue saved there would have no items."""
    client.force_login(admin_user)
    assert client.get("/admin/labeling/queue/add/").status_code == 403


def test_wellbeing_settings_at_creation_through_the_page(client, admin_user):
    client.force_login(admin_user)
    rubric = RubricFactory()
    _prompts_with_candidates(1, 2)
    form_page = client.get(URL).content.decode()
    assert 'name="daily_cap"' in form_page and 'name="disturbing"' in form_page
    response = client.post(URL, _form(rubric, disturbing="on", daily_cap=40, break_after=15))
    assert response.status_code == 302, response.content.decode()[:2000]
    queue = Queue.objects.get(name="Helpfulness, batch 1")
    assert (queue.disturbing, queue.daily_cap, queue.break_after) == (True, 40, 15)
    refused = client.post(URL, _form(rubric, name="again", daily_cap=0))
    assert refused.status_code == 400 and not Queue.objects.filter(name="again").exists()
