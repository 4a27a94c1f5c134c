"""A conversation in a real browser, by keyboard only: write, Ctrl+Enter, wait for the replies
(the typing indicator, then htmx swaps them in), rank them with keys (a tie included), Enter,
see the kept reply, the next turn, and a reply written outright; on a wide and a narrow screen.

The fake backend stands in for the model. Tasks run eagerly, so a turn is usually ready by the
time the page loads; the first turn holds its task back instead, so that the page has to poll.
"""

from __future__ import annotations

from typing import Any

import pytest

from labeling.models import Judgment, Turn
from labeling.services import sessions as session_services
from labeling.services.session_generation import turns_generate
from labeling.services.session_templates import session_template_create
from tests.browser.helpers import WIDE, login
from tests.factories import CriterionFactory, RaterFactory, RubricFactory

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

NARROW = {"width": 390, "height": 844}


@pytest.fixture
def world(live_server, fake_backend):
    from model_runner.services import generator_get_bundled

    trainer = RaterFactory(username="tess")
    rubric = RubricFactory()
    CriterionFactory(rubric=rubric, key="harmful", kind="flag", question="Harmful")
    queue = session_template_create(
        name="Chat with the model",
        rubric=rubric,
        generators=[generator_get_bundled()],
        alternatives=3,
        max_turns=3,
        members=[trainer],
        guidelines="Prefer **short** replies.",
    )
    return {"base": live_server.url, "trainer": trainer, "queue": queue}


def _focused(page: Any) -> dict[str, str]:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return {id: e.id, cls: e.className, label: (e.dataset && e.dataset.label) || ''}; }"
    )


def _wait_for_cards(page: Any) -> None:
    page.wait_for_selector("#turn-live[data-state=ready]")
    page.wait_for_function("() => document.activeElement.classList.contains('chip')")


def _rank_and_send(page: Any, keys: list[str]) -> None:
    """A digit for the focused card, Tab to the next card, ..., then Enter."""
    for n, key in enumerate(keys):
        if n:
            page.keyboard.press("Tab")
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#say-text:focus")


def _kept(turn: Turn) -> str:
    turn.refresh_from_db()
    assert turn.status == Turn.Status.DONE
    return turn.text


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["wide", "narrow"])
def test_two_turns_and_a_written_reply_by_keyboard(browser, world, monkeypatch, screenshots, viewport):
    base, queue = world["base"], world["queue"]
    context, page = login(browser, base, "tess", "/chat/", viewport=viewport)
    page.focus(f"#template-{queue.pk} button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#say-text:focus")  # the message box is where the keys go

    # turn 1: the worker has not answered yet: a typing indicator, polled until the replies come
    held: list[int] = []
    enqueue = session_services._enqueue
    monkeypatch.setattr(session_services, "_enqueue", lambda ids, *rest: held.extend(ids))
    page.keyboard.type("What is the capital of France?")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    page.wait_for_selector("#turn-live[data-state=waiting] .typing")
    assert page.is_visible("text=What is the capital of France?")
    monkeypatch.setattr(session_services, "_enqueue", enqueue)  # (undo() would drop the fake model too)
    assert len(held) == 1
    turns_generate(turn_id=held[0])  # the worker answers; the page's next poll swaps them in
    _wait_for_cards(page)
    assert page.inner_text("#chat-status").startswith("The replies are ready")
    first = Turn.objects.get(pk=held[0])
    if viewport is NARROW:
        # stacked, and nothing wider than the screen
        boxes = [page.locator(f'#turn-live .response[data-label="{x}"]').bounding_box() for x in "AB"]
        assert boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"], boxes
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    page.evaluate(
        "n => n ? document.getElementById('turn-live').scrollIntoView() : scrollTo(0, 0)", viewport is NARROW
    )
    page.screenshot(path=str(screenshots / ("chat-narrow.png" if viewport is NARROW else "chat-turn.png")))
    # A first, B and C tied second
    _rank_and_send(page, ["1", "2", "2"])
    kept = _kept(first)
    assert page.locator(f"#turn-{first.pk}").inner_text().endswith(kept)

    # turn 2: ready as the page loads (the task ran at once); flagged (H), then the order typed
    # after R: B and C tied first, then A; Enter sends it from the box
    page.keyboard.type("And of Italy?")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    _wait_for_cards(page)
    second = Turn.objects.filter(role="assistant", abandoned=False).order_by("-position").first()
    page.keyboard.press("H")  # the rubric's flag
    assert page.is_checked("input[name=criterion-harmful]")
    page.keyboard.press("R")
    page.keyboard.type("b = c > a")
    assert page.locator('#rank-board .tier[data-rank="1"] .chip').all_inner_texts() == ["B", "C"]
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#say-text:focus")
    assert page.locator(f"#turn-{second.pk}").inner_text().endswith(_kept(second))

    # turn 3: the trainer writes the model's reply too (tick the box: Tab, Tab, Space)
    page.keyboard.type("And of Spain?")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    assert page.is_checked("#say-demo")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    page.wait_for_selector("#reply-text:focus")
    page.keyboard.type("Madrid.")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=has all its turns")
    third = Turn.objects.filter(role="assistant", abandoned=False).order_by("-position").first()
    assert _kept(third) == "Madrid." and third.by_trainer
    assert "written by you" in page.locator(f"#turn-{third.pk}").inner_text().lower()

    judgments = list(Judgment.objects.order_by("id"))
    assert [j.ranking for j in judgments] == [[["A"], ["B", "C"]], [["B", "C"], ["A"]]]
    assert [j.criteria.get("harmful") for j in judgments] == [False, True]
    assert all(j.active_seconds is not None for j in judgments)
    labels = {c: i for i, c in enumerate(first.assignment.shown_order)}
    assert first.chosen_id is not None and labels[first.chosen_id] == 0  # A, as shown
    if viewport is NARROW:
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    context.close()


def test_retry_and_go_back_by_keyboard(browser, world):
    base, queue = world["base"], world["queue"]
    context, page = login(browser, base, "tess", "/chat/")
    page.focus(f"#template-{queue.pk} button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#say-text:focus")
    page.keyboard.type("This is TOO LONG for the model")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    page.wait_for_selector("#retry-button:focus")
    assert page.is_visible("text=prompt is too long for the fake")
    with page.expect_navigation():
        page.keyboard.press("R")  # the fake refuses again, and the reason stays in view
    page.wait_for_selector("#retry-button:focus")
    assert Turn.objects.get(role="assistant").attempts == 2

    # write the reply instead (W), then go back to the first message to change it
    page.keyboard.press("W")
    page.keyboard.type("A shorter question, please.")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    page.wait_for_selector("#say-text:focus")
    user_turn = Turn.objects.get(role="user")
    page.focus(f"#turn-{user_turn.pk} summary")
    page.keyboard.press("Enter")  # opens the confirmation
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#say-text:focus")
    assert page.input_value("#say-text") == "This is TOO LONG for the model"
    assert Turn.objects.filter(abandoned=True).count() == 2
    context.close()
