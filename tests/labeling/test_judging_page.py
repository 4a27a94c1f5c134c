"""The judging page shows everything that is stored and wastes no key press: every word of the
prompt, guidelines and responses (formatted, and exactly as typed on request), counts that
include the item on screen, a clear answer to a stale second tab, and the copy-overall key."""

from __future__ import annotations

import pytest
from django.test import Client

from labeling.models import Assignment, Criterion, Judgment
from labeling.rendering import missing_words, visible_text
from tests.factories import (
    CriterionFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RubricFactory,
    make_pair,
)

pytestmark = pytest.mark.django_db

TRICKY = (
    'An image ![chart](https://example.com/c.png) and ![img](x" onerror="y) then more words\n'
    "a second line\n"
    "&amp; entity and <b>html</b>\n\n"
    "```python\nprint('code')\n```\n"
    "Last words here."
)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _claim(client: Client, queue) -> int:
    response = client.get(f"/rate/{queue.pk}/")
    assert response.status_code == 302 and "/rate/assignment/" in response.url
    return int(response.url.rstrip("/").rsplit("/", 1)[1])


def test_every_word_of_prompt_guidelines_and_responses_reaches_the_page(rater):
    prompt = PromptFactory(
        messages=[
            {"role": "system", "content": "System rules ![logo](https://x.example/l.png) stay"},
            {"role": "user", "content": TRICKY},
        ]
    )
    queue = QueueFactory(members=[rater], guidelines="Guide ![pic](https://g.example/p.png)\nline two &copy;")
    QueueItemFactory(queue=queue, comparison=make_pair(prompt, texts=(TRICKY, "Other *answer*\nline two")))
    client = _client(rater)
    page = client.get(f"/rate/assignment/{_claim(client, queue)}/").content.decode()
    shown = visible_text(page)
    for source in (
        queue.guidelines,
        "System rules ![logo](https://x.example/l.png) stay",
        TRICKY,
        "Other answer line two",
    ):
        assert missing_words(source, page) == [], source
    assert "<img" not in page
    # each response also exactly as typed, for the toggle (key P)
    assert page.count('class="as-typed"') == 2
    assert "![img](x&quot; onerror=&quot;y) then more words\na second line" in page
    assert "Last words here." in shown


def test_left_in_queue_counts_the_item_on_screen(rater):
    queue = QueueFactory(members=[rater])
    QueueItemFactory(queue=queue)
    client = _client(rater)
    page = client.get(f"/rate/assignment/{_claim(client, queue)}/").content.decode()
    assert 'data-testid="left">1<' in page


def test_likert_ends_come_from_the_criterion_not_a_fixed_text(rater):
    queue = QueueFactory(members=[rater])
    CriterionFactory(
        rubric=queue.rubric,
        key="quality",
        kind=Criterion.Kind.LIKERT,
        question="Overall quality of each response (1 = terrible, 7 = excellent)",
    )
    CriterionFactory(rubric=queue.rubric, key="style", kind=Criterion.Kind.LIKERT, question="Style")
    QueueItemFactory(queue=queue)
    client = _client(rater)
    page = client.get(f"/rate/assignment/{_claim(client, queue)}/").content.decode()
    assert "1 = terrible, 7 = excellent" in page and "1 = poor" not in page
    assert "1 = lowest, 7 = highest" in page


def test_every_criterion_shows_its_keys(rater):
    queue = QueueFactory(members=[rater])
    CriterionFactory(
        rubric=queue.rubric, key="helpful", kind=Criterion.Kind.PREFERENCE, question="More helpful?"
    )
    QueueItemFactory(queue=queue)
    client = _client(rater)
    page = client.get(f"/rate/assignment/{_claim(client, queue)}/").content.decode()
    criterion = page[page.index('data-scale="criterion-helpful"') :]
    assert all(f"<kbd>{n}</kbd>" in criterion[: criterion.index("</fieldset>")] for n in range(1, 8))


def test_a_different_answer_from_a_stale_tab_is_not_saved_and_says_what_is_stored(rater):
    queue = QueueFactory(members=[rater])
    QueueItemFactory(queue=queue)
    QueueItemFactory(queue=queue)
    first_tab, second_tab = _client(rater), _client(rater)
    assignment_id = _claim(first_tab, queue)
    first_tab.post(f"/rate/assignment/{assignment_id}/", {"preference": "-2"})
    # the same answer again: a plain replay
    replay = second_tab.post(f"/rate/assignment/{assignment_id}/", {"preference": "-2"}, follow=True)
    assert "Already saved." in replay.content.decode()
    # another answer from the stale tab: refused, and the stored one is named
    stale = second_tab.post(f"/rate/assignment/{assignment_id}/", {"preference": "3"}, follow=True)
    body = stale.content.decode()
    assert "already judged" in body and "“A is better”" in body and "was not saved" in body
    assert Judgment.objects.get(assignment_id=assignment_id).preference == -2
    # the htmx path says it on the next item, as a warning
    lease = Assignment.objects.get(rater=rater, status=Assignment.Status.LEASED)
    first_tab.post(f"/rate/assignment/{lease.pk}/", {"preference": "bad"})
    swapped = second_tab.post(f"/rate/assignment/{lease.pk}/", {"preference": "1"}, HTTP_HX_REQUEST="true")
    assert "notice warn" in swapped.content.decode() and "“Both are bad”" in swapped.content.decode()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_copy_overall_key_is_offered_only_where_the_rubric_allows_it(rater, enabled):
    queue = QueueFactory(members=[rater], rubric=RubricFactory(copy_overall=enabled))
    CriterionFactory(rubric=queue.rubric, key="helpful", kind=Criterion.Kind.PREFERENCE, required=True)
    QueueItemFactory(queue=queue)
    client = _client(rater)
    page = client.get(f"/rate/assignment/{_claim(client, queue)}/").content.decode()
    assert ('id="copy-overall"' in page) is enabled


def test_rubrics_take_copy_overall_through_the_api(admin_api):
    response = admin_api.post(
        "/api/v1/rubrics/",
        {
            "name": "quick",
            "copy_overall": True,
            "criteria": [{"key": "helpful", "question": "More helpful?", "kind": "preference"}],
        },
        format="json",
    )
    assert response.status_code == 201 and response.json()["copy_overall"] is True
    assert admin_api.get("/api/v1/rubrics/").json()[-1]["copy_overall"] is True
