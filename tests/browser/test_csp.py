"""The Content-Security-Policy holds on every page: no page is refused a script, a style, an image
or a request, and none needs an inline script (or an inline style).

The pages and states are those of the axe test (``tests/browser/test_axe.py``): its scenarios
run again here with an audit that collects, for each state, every violation the browser reports
(``securitypolicyviolation`` events and Chromium's "Refused to ..." console messages) and every
page served without the header. Added here: the Django admin, and a judgment submitted on the
judging page, whose next item htmx swaps in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from labeling.models import Criterion
from tests.browser import test_axe
from tests.browser.helpers import login

# The axe test's scenarios and their world, collected here too (with this module's fixtures).
from tests.browser.test_axe import (  # noqa: F401
    test_admin_manage_and_queue_pages,
    test_chat_pages,
    test_export_page_and_api_docs,
    test_generation_and_import_pages,
    test_judging_page,
    test_login_and_error_pages,
    test_rater_pages,
    world,
)
from tests.factories import CriterionFactory, QueueFactory, QueueItemFactory, RaterFactory, make_pair

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# Reported to the page (in each browser context, before any script of the page runs) and passed
# to the recorder: the violation events carry the directive and what was blocked.
LISTEN = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__preflabCspViolation({
    directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile,
    line: e.lineNumber, sample: e.sample, page: document.location.pathname,
  });
});
"""


class Recorder:
    """What every browser context of the test has reported since the last ``take``."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def attach(self, context: Any) -> None:
        context.expose_binding("__preflabCspViolation", lambda source, v: self.found.append(json.dumps(v)))
        context.add_init_script(LISTEN)
        context.on("console", self._console)
        context.on("response", self._response)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("Refused to"):
            self.found.append(f"console: {message.text}")

    def _response(self, response: Any) -> None:
        if response.request.resource_type == "document" and "content-security-policy" not in response.headers:
            self.found.append(f"no Content-Security-Policy header: {response.status} {response.url}")

    def take(self) -> list[str]:
        found, self.found = self.found, []
        return found


RECORDER = Recorder()


class RecordingBrowser:
    """The session's browser, whose new contexts report to ``RECORDER``."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def new_context(self, **kwargs: Any) -> Any:
        context = self._browser.new_context(**kwargs)
        RECORDER.attach(context)
        return context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


class CspAudit:
    """In place of the axe test's ``Audit``: what the browser refused, by state."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}
        RECORDER.take()

    def check(self, page: Any, state: str) -> None:
        page.wait_for_load_state("load")
        page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 100))")  # events are async
        self.found[state] = RECORDER.take()

    def assert_clean(self) -> None:
        dirty = {state: found for state, found in self.found.items() if found}
        assert dirty == {}, json.dumps(dirty, indent=2)


@pytest.fixture
def browser(browser: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingBrowser]:
    monkeypatch.setattr(test_axe, "Audit", CspAudit)
    RECORDER.take()
    yield RecordingBrowser(browser)


def test_django_admin(browser, world):  # noqa: F811 (the fixture imported above)
    base, audit = world["base"], CspAudit()
    context, page = login(browser, base, "ada", "/admin/")
    audit.check(page, "/admin/")
    for path in (
        "/admin/labeling/queue/",
        f"/admin/labeling/queue/{world['busy'].pk}/change/",
        "/admin/auth/group/add/",
    ):
        page.goto(base + path)
        audit.check(page, path)
    context.close()
    audit.assert_clean()


def test_a_judgment_swapped_in_by_htmx(browser, live_server):
    audit = CspAudit()
    rater = RaterFactory(username="swap")
    queue = QueueFactory(name="Swaps", members=[rater])
    CriterionFactory(rubric=queue.rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful")
    for n in range(2):
        QueueItemFactory(queue=queue, comparison=make_pair(texts=(f"First {n}.", f"Second {n}.")))
    context, page = login(browser, live_server.url, "swap", "/rate/")
    page.goto(f"{live_server.url}/rate/{queue.pk}/")
    page.wait_for_selector("#workbench[data-ready]")
    audit.check(page, "judging page")
    before = page.get_attribute("#workbench", "data-assignment")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "b => { const w = document.getElementById('workbench');"
        " return w && w.dataset.ready && (w.dataset.assignment !== b || w.dataset.done); }",
        arg=before,
    )
    audit.check(page, "judging page after htmx swapped in the next item")
    context.close()
    audit.assert_clean()
