"""The review page in a real browser, from the keyboard: a reviewer opens a contested item from the
list, picks the final preference with a number key, writes the note after N, and saves with
Ctrl+Enter, under the strict CSP and with no axe violation."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from labeling.models import Review, User
from labeling.selectors.quality import comparison_orders
from labeling.services import assignment_claim_next, judgment_submit
from tests.browser.helpers import login
from tests.factories import QueueFactory, QueueItemFactory, RaterFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def test_a_reviewer_adjudicates_from_the_keyboard(browser, live_server):
    raters = [RaterFactory() for _ in range(2)]
    queue = QueueFactory(name="Disputed", overlap=2, review_disagreement=0.0, members=raters)
    item = QueueItemFactory(queue=queue)
    order = comparison_orders([item.comparison_id])[item.comparison_id]
    for rater, stored in zip(raters, (-2, 2), strict=True):
        assignment = assignment_claim_next(rater=rater, queue=queue)
        shown = stored if assignment.shown_order[0] == order[0] else -stored
        judgment_submit(assignment=assignment, preference=shown, rationale=f"I think {stored}")
    UserFactory(username="rita", role=User.Role.REVIEWER)

    errors: list[str] = []
    context, page = login(browser, live_server.url, "rita", "/review/")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.click(f"a[href='/review/queues/{queue.pk}/']")
    page.click(f"a[href='/review/items/{item.pk}/']")
    page.wait_for_url(f"**/review/items/{item.pk}/")
    assert page.get_by_text("I think -2").is_visible() and page.get_by_text("I think 2").is_visible()
    found = [(v["id"], [n["target"] for n in v["nodes"]]) for v in Axe().run(page).response["violations"]]
    assert not found, found

    page.keyboard.press("3")  # Response 1 slightly better
    assert page.locator("input[name=preference][value='-1']").is_checked()
    page.keyboard.press("n")
    page.keyboard.type("the second misses the question")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"**/review/queues/{queue.pk}/")
    review = Review.objects.get()
    assert (review.item_id, review.preference, review.note) == (item.pk, -1, "the second misses the question")
    assert not [e for e in errors if "Content Security Policy" in e], errors
    context.close()
