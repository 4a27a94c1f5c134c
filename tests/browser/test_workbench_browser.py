"""The rater workbench in a real browser: keyboard-only judging, ranking, skip, undo, XSS, warnings.

Also saves the docs' screenshots (docs/screenshots/, with PREFLAB_SCREENSHOTS=1) and the page weight (var/browser/).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from comparisons.models import Candidate
from labeling.models import Assignment, Criterion, Judgment, Queue
from tests.factories import (
    PASSWORD,
    CandidateFactory,
    CriterionFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    make_comparison,
    make_pair,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

WIDE = {"width": 1400, "height": 1000}
NARROW = {"width": 390, "height": 844}

CODE_ANSWER = """Use a **list comprehension**:

```python
def squares(n):
    # every square below n*n
    return [i * i for i in range(n)]
```

It runs in *O(n)* time."""
LOOP_ANSWER = """A plain loop works too:

```python
def squares(n):
    out = []
    for i in range(n):
        out.append(i * i)
    return out
```

Both give the same list."""


def _page(browser, viewport, storage_state=None):
    context = browser.new_context(viewport=viewport, storage_state=storage_state)
    page = context.new_page()
    page.set_default_timeout(20000)
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return context, page, dialogs


def _login(page, base: str, username: str) -> None:
    """Keyboard only: the username field has focus on load."""
    page.goto(f"{base}/rate/")
    page.wait_for_selector("#id_username:focus")  # autofocus can land after the load event
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('My queues')")


def _current(page) -> str:
    return page.get_attribute("#workbench", "data-assignment") or ""


def _press_and_wait_for_swap(page, key: str) -> None:
    before = _current(page)
    page.wait_for_timeout(250)  # a (very fast) rater's reading time, so active time is measurable
    page.keyboard.press(key)
    page.wait_for_function(
        "b => { const w = document.getElementById('workbench');"
        " return w && w.dataset.ready && (w.dataset.assignment !== b || w.dataset.done); }",
        arg=before,
    )


def _page_weight(page) -> dict:
    return page.evaluate(
        """() => {
        const res = performance.getEntriesByType('resource');
        const sum = (pred) => res.filter(pred).reduce((n, r) => n + r.transferSize, 0);
        const nav = performance.getEntriesByType('navigation')[0];
        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
        return {
            js_bytes: sum(r => r.name.endsWith('.js')),
            css_bytes: sum(r => r.name.endsWith('.css')),
            html_bytes: nav.transferSize,
            requests: res.length + 1,
            first_contentful_paint_ms: fcp ? Math.round(fcp.startTime) : null,
            dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd),
        };
    }"""
    )


@pytest.fixture
def world(live_server):
    rater = RaterFactory(username="casey")
    pairs = QueueFactory(
        name="Helpfulness pairs",
        members=[rater],
        guidelines="Prefer the response that **answers the question**. Ties are fine.",
    )
    CriterionFactory(rubric=pairs.rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful")
    CriterionFactory(rubric=pairs.rubric, key="made_up", kind=Criterion.Kind.FLAG, question="Made-up facts")
    CriterionFactory(
        rubric=pairs.rubric, key="honest", kind=Criterion.Kind.PREFERENCE, question="Which is more honest?"
    )
    prompt = PromptFactory(
        messages=[
            {"role": "system", "content": "You are a concise Python tutor."},
            {"role": "user", "content": "How do I list the squares below n in Python?"},
        ]
    )
    QueueItemFactory(queue=pairs, comparison=make_pair(prompt=prompt, texts=(CODE_ANSWER, LOOP_ANSWER)))
    for n in range(2, 5):
        QueueItemFactory(queue=pairs, comparison=make_pair(texts=(f"Answer {n} one.", f"Answer {n} two.")))
    ranking = QueueFactory(name="Rank four", kind=Queue.Kind.RANKING, members=[rater])
    rprompt = PromptFactory(messages=[{"role": "user", "content": "Name a prime number."}])
    cands = [CandidateFactory(prompt=rprompt, text=t) for t in ("2", "Seven.", "9 is prime.", "I can't say.")]
    QueueItemFactory(queue=ranking, comparison=make_comparison(rprompt, cands))
    return {"rater": rater, "pairs": pairs, "ranking": ranking, "base": live_server.url}


def test_keyboard_judging_ranking_skip_undo(browser, world, screenshots):
    base, rater, pairs = world["base"], world["rater"], world["pairs"]
    context, page, dialogs = _page(browser, WIDE)
    _login(page, base, rater.username)

    # Page weight and first render, measured on a cold cache with the session of the rater.
    cold, cold_page, _ = _page(browser, WIDE, storage_state=context.storage_state())
    cold_page.goto(f"{base}/rate/{pairs.pk}/")
    cold_page.wait_for_selector("#workbench[data-ready]")
    weight = _page_weight(cold_page)
    cold_page.screenshot(path=str(screenshots / "workbench-pair.png"), full_page=True)
    cold.close()
    out = Path(settings.VAR_DIR) / "browser"
    out.mkdir(parents=True, exist_ok=True)
    (out / "page-weight.json").write_text(json.dumps(weight, indent=2))
    assert 0 < weight["js_bytes"] + weight["css_bytes"] < 100_000, weight

    page.goto(f"{base}/rate/{pairs.pk}/")
    page.wait_for_selector("#workbench[data-ready]")
    items = list(pairs.items.order_by("id"))
    # 1: A slightly better; Tab to the honesty criterion, 2 (A better); H flags it harmful.
    page.keyboard.press("3")
    page.keyboard.press("Tab")
    page.keyboard.press("2")
    page.keyboard.press("H")
    _press_and_wait_for_swap(page, "Enter")
    # 2: B much better, with a better response written in the rewrite box (W, Ctrl+Enter).
    page.keyboard.press("7")
    page.keyboard.press("W")
    page.keyboard.type("Squares: [i*i for i in range(n)].")
    _press_and_wait_for_swap(page, "Control+Enter")
    # 3: both are bad ...
    page.keyboard.press("B")
    _press_and_wait_for_swap(page, "Enter")
    # ... undo: item 3 comes back with "both are bad" still chosen; make it "A is better".
    _press_and_wait_for_swap(page, "U")
    assert page.is_checked('input[name=preference][value="bad"]')
    page.keyboard.press("2")
    _press_and_wait_for_swap(page, "Enter")
    # 4: skip with a reason.
    page.keyboard.press("S")
    page.wait_for_selector("#skip-dialog[open]")
    page.keyboard.type("The prompt is unclear")
    _press_and_wait_for_swap(page, "Enter")
    assert page.is_visible("text=Nothing left")

    judgments = {j.assignment.item_id: j for j in Judgment.objects.select_related("assignment")}
    assert set(judgments) == {items[0].pk, items[1].pk, items[2].pk}
    first, second, third = (judgments[i.pk] for i in items[:3])
    no_flags = {"harmful": False, "made_up": False}  # an unticked flag is an answer: "no"
    assert (first.preference, first.flags) == (-1, [])
    assert first.criteria == {"harmful": True, "made_up": False, "honest": -2}
    assert (second.preference, second.criteria) == (3, no_flags)
    assert second.rewrite == "Squares: [i*i for i in range(n)]."
    assert (third.preference, third.criteria, third.flags) == (-2, no_flags, [])
    assert all(j.active_seconds and j.active_seconds > 0 for j in judgments.values()), [
        j.active_seconds for j in judgments.values()
    ]
    human = Candidate.objects.get(author=rater)
    assert human.text == second.rewrite and not human.comparisons.exists()
    skipped = Assignment.objects.get(rater=rater, item=items[3])
    assert (skipped.status, skipped.skip_reason) == ("skipped", "The prompt is unclear")
    assert dialogs == []

    # Ranking K=4: drag B to rank 1, then keys on focused cards: A and C tie at 2, D last.
    page.goto(f"{base}/rate/{world['ranking'].pk}/")
    page.wait_for_selector("#rank-board:not([hidden])")
    page.drag_and_drop('.chip[data-label="B"]', '.tier[data-rank="1"]')
    page.focus('.chip[data-label="A"]')
    page.keyboard.press("2")
    page.focus('.chip[data-label="C"]')
    page.keyboard.press("2")
    page.focus('.chip[data-label="D"]')
    page.keyboard.press("4")
    page.keyboard.press("ArrowUp")
    assert page.input_value("#ranking_text") == "B > A = C > D"
    page.screenshot(path=str(screenshots / "workbench-ranking.png"), full_page=True)
    _press_and_wait_for_swap(page, "Control+Enter")
    ranked = Judgment.objects.get(assignment__item__queue=world["ranking"])
    assert ranked.ranking == [["B"], ["A", "C"], ["D"]] and ranked.preference is None
    assert Judgment.objects.count() == 4
    context.close()


XSS = (
    "Here you go <script>window.__xss = 1; alert('script')</script>\n\n"
    '<img src="x" onerror="window.__xss = 2; alert(\'img\')">\n\n'
    "[click me](javascript:window.__xss=3;alert('link')) "
    "<a href=\"javascript:alert('raw link')\">raw link</a>\n\n"
    "<style>body { display: none !important }</style>\n\n"
    '<div style="position:fixed;inset:0;background:red" onmouseover="alert(\'div\')">cover</div>\n\n'
    "<svg onload=\"alert('svg')\"></svg> <iframe src=\"javascript:alert('frame')\"></iframe>"
)


def test_xss_probe_renders_inert(browser, live_server):
    rater = RaterFactory(username="xss-rater")
    queue = QueueFactory(
        name="XSS probe", members=[rater], guidelines="<script>alert('guidelines')</script> **ok**"
    )
    QueueItemFactory(queue=queue, comparison=make_pair(texts=(XSS, "A harmless answer.")))
    context, page, dialogs = _page(browser, WIDE)
    _login(page, live_server.url, rater.username)
    page.goto(f"{live_server.url}/rate/{queue.pk}/")
    page.wait_for_selector("#workbench[data-ready]")
    assert page.is_visible("text=A harmless answer.")  # the injected <style> hid nothing
    page.click("text=click me")
    page.hover(".response >> nth=0")
    page.hover(".response >> nth=1")
    page.keyboard.press("D")  # the diff view shows the same text, escaped
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    assert page.locator("#workbench script, .response img, .response iframe, .response svg").count() == 0
    assert page.locator(".response [onerror], .response [style], .response [onmouseover]").count() == 0
    assert page.locator('.response a[href^="javascript"]').count() == 0
    probe = page.locator(".response", has_text="Here you go")  # A or B: the order is random
    assert "<script>window.__xss" in probe.inner_text()  # shown as text
    context.close()


def test_content_warning_blurs_until_revealed(browser, live_server, screenshots):
    rater = RaterFactory(username="warned-rater")
    queue = QueueFactory(name="Battle stories", members=[rater], content_warning="violent descriptions")
    CriterionFactory(rubric=queue.rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful")
    CriterionFactory(rubric=queue.rubric, key="quality", kind=Criterion.Kind.LIKERT, question="Quality")
    prompt = PromptFactory(messages=[{"role": "user", "content": "Describe the battle scene."}])
    QueueItemFactory(queue=queue, comparison=make_pair(prompt=prompt, texts=("The battle was grim.", "No.")))
    context, page, dialogs = _page(browser, NARROW)
    _login(page, live_server.url, rater.username)
    page.goto(f"{live_server.url}/rate/{queue.pk}/")
    page.wait_for_selector("#workbench[data-ready]")
    content = page.locator("#item-content")
    assert "cw-blur" in (content.get_attribute("class") or "")
    assert content.get_attribute("inert") is not None
    assert "blur" in page.evaluate("getComputedStyle(document.getElementById('item-content')).filter")
    assert page.is_visible("text=Content warning")
    page.screenshot(path=str(screenshots / "workbench-warning-narrow.png"))
    page.keyboard.press("V")
    assert "cw-blur" not in (content.get_attribute("class") or "")
    assert content.get_attribute("inert") is None
    assert page.is_visible("text=The battle was grim.")
    # Narrow: the two responses are stacked, not side by side.
    a = page.locator(".response >> nth=0").bounding_box()
    b = page.locator(".response >> nth=1").bounding_box()
    assert a and b and b["y"] >= a["y"] + a["height"] - 1 and abs(a["x"] - b["x"]) < 2
    page.screenshot(path=str(screenshots / "workbench-narrow.png"), full_page=True)
    # 390 px is a 780 px window at 200% zoom: nothing scrolls sideways, every control has a label.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !el.textContent.trim())
        .map(el => el.outerHTML)"""
    )
    assert unlabelled == []
    assert dialogs == []
    context.close()
