"""The model leaderboard page in a real browser: the score chart with its interval bars and the
win-rate heat map render (inline SVG, under the strict CSP, with no axe violation), and the scope
form narrows them.

Also saves the screenshot the docs show (docs/screenshots/, with PREFLAB_SCREENSHOTS=1).
"""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from comparisons.models import Candidate
from labeling.services import assignment_claim_next, judgment_submit
from tests.browser.helpers import login
from tests.factories import (
    AdminFactory,
    CandidateFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    make_comparison,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

STRENGTH = {"qwen2.5-0.5b": 3, "smollm2-135m": 2, "gpt2-small": 1, "tinyllama": 0}


def _queue(name, pairs, raters):
    queue = QueueFactory(name=name, overlap=len(raters), members=raters)
    for first, second in pairs:
        prompt = PromptFactory()
        candidates = [
            CandidateFactory(prompt=prompt, generator=first, sample_index=0),
            CandidateFactory(prompt=prompt, generator=second, sample_index=1),
        ]
        QueueItemFactory(queue=queue, comparison=make_comparison(prompt, candidates))
    return queue


def _judge(queue, raters):
    """The stronger generator wins, except every fifth judgment goes the other way or ties."""
    n = 0
    for rater in raters:
        while (assignment := assignment_claim_next(rater=rater, queue=queue)) is not None:
            a, b = (Candidate.objects.get(pk=pk).generator.name for pk in assignment.shown_order)
            n += 1
            better_a = STRENGTH[a] > STRENGTH[b]
            preference = (-2 if better_a else 2) * (-1 if n % 5 == 0 else 1) if n % 7 else 0
            judgment_submit(assignment=assignment, preference=preference)


def test_leaderboard_draws_scores_and_heat_map(browser, live_server, screenshots):
    generators = {name: GeneratorFactory(name=name) for name in STRENGTH}
    names = list(STRENGTH)
    pairs = [(generators[x], generators[y]) for i, x in enumerate(names) for y in names[i + 1 :]]
    raters = [RaterFactory() for _ in range(3)]
    _judge(_queue("Helpfulness", pairs * 3, raters), raters)
    small = _queue("Small models", [(generators["gpt2-small"], generators["tinyllama"])] * 2, raters)
    _judge(small, raters)
    AdminFactory(username="ada")
    errors: list[str] = []
    context, page = login(browser, live_server.url, "ada", "/manage/")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.click("a[href='/manage/leaderboard/']")
    page.wait_for_url("**/manage/leaderboard/")

    chart = page.locator("svg#score-chart")
    assert chart.is_visible()
    assert chart.locator("circle.score-dot").count() == 4
    assert chart.locator("line.interval").count() == 12  # a bar and two whiskers each
    box = chart.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 100
    # Best first, and each interval around its dot.
    assert page.locator("#leaderboard-table tbody tr").first.inner_text().split("\t")[1] == "qwen2.5-0.5b"
    for i in range(4):
        row = chart.locator("g.score-row").nth(i)
        dot = float(row.locator("circle").get_attribute("cx") or 0)
        bar = row.locator("line.interval").first
        assert float(bar.get_attribute("x1") or 0) <= dot <= float(bar.get_attribute("x2") or 0)

    heat = page.locator("svg#heat-map")
    assert heat.locator("rect.cell").count() == 16
    fills = {heat.locator("rect.cell").nth(i).get_attribute("fill") for i in range(16)}
    assert len(fills) >= 3  # wins, losses and the diagonal differ
    assert heat.locator("text.cell-text").count() == 12
    page.screenshot(path=str(screenshots / "manage-leaderboard.png"), full_page=True)
    # axe-core, all default rules (WCAG 2.x A and AA): nothing to fix.
    found = [(v["id"], [n["target"] for n in v["nodes"]]) for v in Axe().run(page).response["violations"]]
    assert not found, found

    page.select_option("#id_queue", label="Small models")
    page.click("#leaderboard-form button[type=submit]")
    page.wait_for_url("**/manage/leaderboard/?queue=*")
    assert page.locator("svg#score-chart circle.score-dot").count() == 2
    assert page.locator("svg#heat-map rect.cell").count() == 4
    assert not [e for e in errors if "Content Security Policy" in e], errors
    context.close()
