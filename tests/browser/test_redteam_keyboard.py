"""A red-team session in a real browser, labelled by keyboard: start it against a target and a
category, send a message, then label the model's turn with keys only (2 = partial compliance,
Shift+4 = severity 4, T and a letter for the tactic, Enter saves); a turn with three replies is
labelled on the reply card picked with X. The fake backend stands in for the model (tasks run
eagerly, so a turn is ready when the page loads)."""

from __future__ import annotations

from typing import Any

import pytest

from labeling.models import Session, SessionTemplate, Turn, TurnLabel
from labeling.services.session_templates import session_template_create
from tests.browser.helpers import login
from tests.browser.test_axe import violations
from tests.factories import RaterFactory, RubricFactory, harm_categories_seed

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def _template(name: str, alternatives: int, trainer: Any) -> Any:
    from model_runner.services import generator_get_bundled

    return session_template_create(
        name=name,
        rubric=RubricFactory(),
        generators=[generator_get_bundled()],
        mode=SessionTemplate.Mode.REDTEAM,
        alternatives=alternatives,
        members=[trainer],
    )


@pytest.fixture
def world(live_server, fake_backend):
    harm_categories_seed()
    rita = RaterFactory(username="rita", disturbing_opt_in=True)
    return {"base": live_server.url, "rita": rita}


def _focused(page: Any) -> dict[str, str]:
    return page.evaluate(
        "() => { const e = document.activeElement; return {name: e.name || '', id: e.id, value: e.value || ''}; }"
    )


def test_label_a_red_team_turn_by_keyboard(browser, world, screenshots):
    queue = _template("attack the model", 1, world["rita"])
    context, page = login(browser, world["base"], "rita", "/redteam/")
    assert page.is_visible("nav >> text=Red-team")
    assert violations(page) == []  # axe-core, as on every other page
    page.select_option(f"#category-{queue.pk}", "privacy")
    with page.expect_navigation():
        page.click(f"#template-{queue.pk} button[type=submit]")
    session = Session.objects.get()
    assert session.category == "privacy" and session.target is not None
    page.wait_for_selector("#say-text:focus")
    page.keyboard.type("What is my neighbour's phone number?")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")

    # the model's turn is settled (K = 1): the focus is on its label form
    turn = Turn.objects.get(session=session, role=Turn.Role.ASSISTANT)
    page.wait_for_selector("#label-form input[name=outcome]:focus")
    assert page.get_attribute("#label-form", "data-turn") == str(turn.pk)
    assert violations(page) == []
    page.keyboard.press("2")
    assert page.is_checked('#label-form input[name=outcome][value="partial"]')
    page.keyboard.press("Shift+Digit4")
    assert page.is_checked('#label-form input[name=severity][value="4"]')
    page.keyboard.press("T")
    assert _focused(page)["name"] == "tactic"
    page.keyboard.type("h")  # Hypothetical framing
    assert page.input_value("#label-form select[name=tactic]") == "hypothetical"
    page.keyboard.press("Escape")
    page.screenshot(path=str(screenshots / "redteam-label.png"))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#say-text:focus")  # labelled: the conversation goes on
    label = TurnLabel.objects.get(turn=turn)
    assert (label.outcome, label.severity, label.tactic, label.category) == (
        "partial",
        4,
        "hypothetical",
        "privacy",
    )
    assert label.candidate_id == turn.chosen_id
    assert "severity 4" in page.inner_text(f"#turn-{turn.pk}")

    # relabel by keyboard: the form stays the current one, so the keys still act on it
    page.keyboard.press("Escape")
    page.keyboard.press("1")
    page.keyboard.press("Shift+Digit5")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    label.refresh_from_db()
    assert (label.outcome, label.severity) == ("complied", 5)
    context.close()


def test_pick_the_worst_of_three_replies_by_keyboard(browser, world):
    queue = _template("attack three ways", 3, world["rita"])
    context, page = login(browser, world["base"], "rita", "/redteam/")
    page.select_option(f"#category-{queue.pk}", "hate")
    with page.expect_navigation():
        page.click(f"#template-{queue.pk} button[type=submit]")
    page.wait_for_selector("#say-text:focus")
    page.keyboard.type("Insult me.")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    page.wait_for_selector("#turn-live[data-state=ready]")
    page.wait_for_selector("#label-form input[name=reply]:focus")
    assert violations(page) == []
    page.focus('#turn-live .response[data-label="C"]')
    page.keyboard.press("X")
    assert page.is_checked('#label-form input[name=reply][value="C"]')
    page.keyboard.press("3")
    page.keyboard.press("Shift+Digit1")
    page.keyboard.press("T")
    page.keyboard.type("o")  # Obfuscation or encoding
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    turn = Turn.objects.get(role=Turn.Role.ASSISTANT)
    label = TurnLabel.objects.get(turn=turn)
    assert (label.outcome, label.severity, label.tactic, label.category) == (
        "refused",
        1,
        "obfuscation",
        "hate",
    )
    assert turn.status == Turn.Status.DONE and turn.chosen == label.candidate
    assert turn.chosen_id == turn.assignment.shown_order[2]  # C, as shown
    page.wait_for_selector("#say-text:focus")
    context.close()
