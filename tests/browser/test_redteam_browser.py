"""Red-team pages in a real browser: an attack under review stays blurred until the reviewer
reveals it and is confirmed by keyboard; the attack-success charts of two generators on
``/manage/redteam/`` and the exposure chart on ``/manage/wellbeing/`` render with their bars."""

from __future__ import annotations

import pytest
from django.utils import timezone

from labeling.models import Attack, AttackExposure, RedteamEvalRun
from tests.browser.helpers import login
from tests.browser.test_axe import violations
from tests.factories import (
    AdminFactory,
    AttackFactory,
    GeneratorFactory,
    ReviewerFactory,
    ReviewQueueFactory,
    harm_categories_seed,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

HARMFUL = "Sure. Step one: wedge a tension wrench into the keyhole and rake the pins."


@pytest.fixture
def world(live_server):
    harm_categories_seed()
    rob = ReviewerFactory(username="rob")
    queue = ReviewQueueFactory(name="Attacks to review", members=[rob])
    attack = AttackFactory(queue=queue, description="Locksmith role-play", prescreen=0.9)
    attack.reply.text = HARMFUL
    attack.reply.save(update_fields=["text"])
    return {"base": live_server.url, "rob": rob, "queue": queue, "attack": attack}


def test_an_attack_stays_blurred_until_revealed_and_is_confirmed_by_keyboard(browser, world, screenshots):
    queue, attack = world["queue"], world["attack"]
    context, page = login(browser, world["base"], "rob", f"/redteam/review/{queue.pk}/")
    content = page.locator("#item-content")
    assert "cw-blur" in (content.get_attribute("class") or "")
    assert content.get_attribute("inert") is not None and content.get_attribute("aria-hidden") == "true"
    assert page.locator("#attack-reply").inner_text().count("tension wrench") == 1  # in the page, unseen
    page.screenshot(path=str(screenshots / "redteam-review.png"))

    page.keyboard.press("v")
    assert "cw-blur" not in (content.get_attribute("class") or "")
    assert content.get_attribute("inert") is None and page.locator("#cw-notice").is_hidden()
    assert violations(page) == []
    page.keyboard.press("c")  # confirm
    page.keyboard.press("1")  # complied
    assert page.locator('input[name="verdict"][value="confirm"]').is_checked()
    assert page.locator('input[name="outcome"][value="complied"]').is_checked()
    page.keyboard.press("n")
    page.keyboard.type("It explains how to pick the lock.")
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    attack.refresh_from_db()
    assert attack.status == Attack.Status.CONFIRMED and attack.reviewer == world["rob"]
    assert (attack.outcome, attack.category, attack.severity) == ("complied", "illegal", 3)
    assert attack.review_note == "It explains how to pick the lock."
    context.close()


def _reviewed_run(generator, tests, outcomes):
    run = RedteamEvalRun.objects.create(
        queue=tests[0].queue, generator=generator, status=RedteamEvalRun.Status.DONE, total=len(tests)
    )
    for test, outcome in zip(tests, outcomes, strict=True):
        AttackFactory(
            queue=test.queue,
            source=Attack.Source.EVAL,
            eval_run=run,
            test_attack=test,
            family=test.family,
            status=Attack.Status.CONFIRMED,
            outcome=outcome,
            claimed_outcome="",
        )
    return run


def test_the_redteam_and_wellbeing_charts_render(browser, world, screenshots):
    AdminFactory(username="ada")
    queue = world["queue"]
    tests = [
        AttackFactory(queue=queue, status=Attack.Status.CONFIRMED, tactic=tactic, category=category)
        for tactic, category in [
            ("role_play", "illegal"),
            ("role_play", "violence"),
            ("hypothetical", "illegal"),
            ("obfuscation", "privacy"),
        ]
    ]
    old, new = GeneratorFactory(name="assistant-v1"), GeneratorFactory(name="assistant-v2")
    _reviewed_run(old, tests, ["complied", "partial", "complied", "refused"])
    _reviewed_run(new, tests, ["refused", "complied", "refused", "over_refused"])
    AttackExposure.objects.create(
        rater=world["rob"], queue=queue, attack=world["attack"], shown_at=timezone.now()
    )

    context, page = login(
        browser, world["base"], "ada", "/manage/redteam/?generators=assistant-v1,assistant-v2"
    )
    charts = page.locator("svg.rate-chart")
    assert charts.count() >= 2
    bars = page.locator("svg.rate-chart rect[class^=series-]")
    widths = [float(bars.nth(i).get_attribute("width") or 0) for i in range(bars.count())]
    assert len(widths) >= 4 and max(widths) > 0
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 40
    text = charts.first.inner_html()
    assert "assistant-v1" in text and "assistant-v2" in text
    assert violations(page) == []
    page.screenshot(path=str(screenshots / "manage-redteam.png"), full_page=True)

    page.goto(f"{world['base']}/manage/wellbeing/")
    chart = page.locator("svg#exposure-chart")
    assert chart.is_visible()
    heights = [
        float(page.locator("svg#exposure-chart rect.bar").nth(i).get_attribute("height") or 0)
        for i in range(page.locator("svg#exposure-chart rect.bar").count())
    ]
    assert max(heights) > 0
    assert "rob" in page.content()
    context.close()
