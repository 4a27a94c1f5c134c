"""The judging page in a real browser: how many key presses a pair takes, the as-typed view, and
where the focus goes when a submission stops on a missing answer.

The scripted rater's figures (key presses and seconds per pair, with and without the copy-overall
key) are written to var/browser/rater-speed.json for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.conf import settings

from labeling.models import Criterion, Judgment, Queue
from tests.browser.helpers import login
from tests.factories import (
    CriterionFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    RubricFactory,
    make_pair,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PAIRS = 12
AS_TYPED = "First line\nsecond line with **stars** and ![img](x.png)\n\n```python\nx = 1\n```"


def _queue(rater, *, copy_overall: bool, name: str) -> Queue:
    queue = QueueFactory(name=name, members=[rater], rubric=RubricFactory(copy_overall=copy_overall))
    for key, question in (
        ("helpful", "More helpful?"),
        ("honest", "More honest?"),
        ("harmless", "More harmless?"),
    ):
        CriterionFactory(
            rubric=queue.rubric, key=key, question=question, kind=Criterion.Kind.PREFERENCE, required=True
        )
    for n in range(PAIRS):
        QueueItemFactory(queue=queue, comparison=make_pair(texts=(f"Answer {n} left.", f"Answer {n} right.")))
    return queue


def _open(browser, base: str, username: str, queue: Queue):
    """Logged in as ``username``, on the queue's first item."""
    context, page = login(browser, base, username, "/rate/")
    page.goto(f"{base}/rate/{queue.pk}/")
    page.wait_for_selector("#workbench[data-ready]")
    return context, page


def _wait_for_next(page, before: str) -> None:
    page.wait_for_function(
        "b => { const w = document.getElementById('workbench');"
        " return w && w.dataset.ready && (w.dataset.assignment !== b || w.dataset.done); }",
        arg=before,
    )


def _judge_all(page, keys_for_pair: list[str]) -> dict[str, float]:
    """Judge every pair with these keys; key presses and wall seconds per pair."""
    presses, started = 0, time.perf_counter()
    for _ in range(PAIRS):
        before = page.get_attribute("#workbench", "data-assignment") or ""
        for key in keys_for_pair:
            page.keyboard.press(key)
            presses += 1
        _wait_for_next(page, before)
    seconds = time.perf_counter() - started
    return {"key_presses_per_pair": presses / PAIRS, "seconds_per_pair": round(seconds / PAIRS, 3)}


def test_a_rater_who_agrees_across_the_board_judges_a_pair_in_two_key_presses(browser, live_server):
    rater = RaterFactory(username="quick")
    quick = _queue(rater, copy_overall=True, name="Copy allowed")
    full = _queue(rater, copy_overall=False, name="Copy not allowed")
    context, page = _open(browser, live_server.url, "quick", quick)
    page.wait_for_selector("#copy-overall")
    # 2 = "A is better"; C copies it into the three empty criteria and submits.
    with_copy = _judge_all(page, ["2", "C"])
    assert page.locator("#workbench[data-done]").count() == 1
    judgments = Judgment.objects.filter(assignment__item__queue=quick)
    assert judgments.count() == PAIRS
    assert all(
        j.preference == -2 and j.criteria == {"helpful": -2, "honest": -2, "harmless": -2} for j in judgments
    )

    page.goto(f"{live_server.url}/rate/{full.pk}/")
    page.wait_for_selector("#workbench[data-ready]")
    assert page.locator("#copy-overall").count() == 0
    # Without the key: the overall answer, then Tab into each criterion and its digit, then Enter.
    without_copy = _judge_all(page, ["2", "Tab", "2", "Tab", "2", "Tab", "2", "Enter"])
    full_judgments = Judgment.objects.filter(assignment__item__queue=full)
    assert full_judgments.count() == PAIRS
    assert all(j.criteria == {"helpful": -2, "honest": -2, "harmless": -2} for j in full_judgments)
    context.close()

    out = Path(settings.BASE_DIR) / "var" / "browser"
    out.mkdir(parents=True, exist_ok=True)
    report = {"pairs": PAIRS, "criteria": 3, "with_copy_overall": with_copy, "without": without_copy}
    (out / "rater-speed.json").write_text(json.dumps(report, indent=2))
    assert with_copy["key_presses_per_pair"] == 2


def test_a_stop_on_a_missing_answer_puts_the_focus_on_it_and_digits_answer_it(browser, live_server):
    rater = RaterFactory(username="careful")
    queue = _queue(rater, copy_overall=False, name="Careful")
    context, page = _open(browser, live_server.url, "careful", queue)
    page.keyboard.press("5")
    page.keyboard.press("Enter")  # the three criteria are missing: the browser stops on the first
    assert page.evaluate("document.activeElement.name") == "criterion-helpful"
    page.keyboard.press("3")
    assert page.is_checked('input[name="criterion-helpful"][value="-1"]')
    assert page.is_checked('input[name="preference"][value="1"]')  # the overall answer is kept
    context.close()


def test_each_response_can_be_shown_exactly_as_typed(browser, live_server):
    rater = RaterFactory(username="reader")
    queue = QueueFactory(members=[rater])
    QueueItemFactory(queue=queue, comparison=make_pair(texts=(AS_TYPED, AS_TYPED)))
    context, page = _open(browser, live_server.url, "reader", queue)
    formatted = page.locator(".response").first
    assert formatted.locator("strong").count() == 1
    assert "![img](x.png)" in formatted.locator(".response-md").inner_text()  # an image shown as text
    assert page.locator("img").count() == 0
    page.keyboard.press("P")  # no response focused: all of them
    for response in page.locator(".response").all():
        typed = response.locator(".as-typed")
        assert typed.is_visible() and not response.locator(".response-md").is_visible()
        assert typed.inner_text() == AS_TYPED
    page.locator(".response").nth(1).focus()
    page.keyboard.press("P")  # only the focused one goes back
    assert page.locator(".response").nth(1).locator(".response-md").is_visible()
    assert page.locator(".response").first.locator(".as-typed").is_visible()
    context.close()
