"""axe-core (bundled by axe-playwright-python) on every page and state people see, with all its
default rules (WCAG 2.x A and AA, and best practices): zero violations.

Each test visits several states and reports every violation it met at once: the rule, the
element and axe's message, so a failure says what to fix.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from export.models import ExportRun
from labeling.models import Criterion, Queue
from labeling.services import assignment_claim_next, judgment_submit
from labeling.services import sessions as session_services
from labeling.services.session_generation import turns_generate
from labeling.services.session_templates import session_template_create
from model_runner.models import GenerationJob, Generator
from tests.browser.helpers import login
from tests.factories import (
    AdminFactory,
    CandidateFactory,
    CriterionFactory,
    GenerationJobFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    ResearcherFactory,
    RubricFactory,
    make_comparison,
    make_pair,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

AXE = Axe()


def violations(page: Any) -> list[str]:
    """axe's violations on the page as it is now: "rule (impact): element: message"."""
    found = []
    for violation in AXE.run(page).response["violations"]:
        for node in violation["nodes"]:
            message = " ".join(node.get("failureSummary", "").split())
            found.append(f"{violation['id']} ({violation['impact']}): {node['target']}: {message}")
    return found


class Audit:
    """Runs axe on each state visited and keeps what it found, by state."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def check(self, page: Any, state: str) -> None:
        page.wait_for_load_state("load")
        self.found[state] = violations(page)

    def assert_clean(self) -> None:
        dirty = {state: found for state, found in self.found.items() if found}
        assert dirty == {}, json.dumps(dirty, indent=2)


def _goto(page: Any, base: str, path: str) -> None:
    page.goto(base + path)


@pytest.fixture
def world(live_server):
    """A small installation: queues with work done, jobs, runs, prompts and people."""
    rater = RaterFactory(username="rae")
    others = RaterFactory.create_batch(2)
    AdminFactory(username="ada")
    ResearcherFactory(username="rita")
    busy = QueueFactory(name="Helpfulness pairs", overlap=2, members=[rater, *others], priority=3)
    QueueItemFactory.create_batch(4, queue=busy)
    for member in others:
        assignment = assignment_claim_next(rater=member, queue=busy)
        judgment_submit(assignment=assignment, preference=-1)
    empty = QueueFactory(name="Empty one", status=Queue.Status.PAUSED)
    PromptFactory.create_batch(2, tags=["math"], collection="evals")
    return {"base": live_server.url, "rater": rater, "busy": busy, "empty": empty}


def test_login_and_error_pages(browser, world):
    base, audit = world["base"], Audit()
    context = browser.new_context()
    page = context.new_page()
    _goto(page, base, "/accounts/login/")
    audit.check(page, "login")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "wrong password")
    page.press("#id_password", "Enter")
    page.wait_for_selector(".msg-error")
    audit.check(page, "login after a wrong password")
    _goto(page, base, "/nowhere/")
    audit.check(page, "404 signed out")
    context.close()

    context, page = login(browser, base, "rae", "/rate/")
    _goto(page, base, "/manage/queues/")
    assert page.locator("h1", has_text="You may not open this page").is_visible()
    audit.check(page, "403 (a rater on an admin page)")
    _goto(page, base, "/manage/nowhere/")
    audit.check(page, "404 signed in")
    context.close()
    audit.assert_clean()


def test_rater_pages(browser, world):
    base, audit = world["base"], Audit()
    context, page = login(browser, base, "rae", "/rate/")
    audit.check(page, "/rate/")
    _goto(page, base, "/rate/profile/")
    audit.check(page, "/rate/profile/")
    page.click("button:has-text('Save')")
    page.wait_for_selector(".messages")
    audit.check(page, "/rate/profile/ saved")
    context.close()
    audit.assert_clean()


def test_admin_manage_and_queue_pages(browser, world):
    base, audit, busy, empty = world["base"], Audit(), world["busy"], world["empty"]
    context, page = login(browser, base, "ada", "/manage/")
    audit.check(page, "/manage/")
    _goto(page, base, "/manage/queues/")
    audit.check(page, "/manage/queues/")
    _goto(page, base, f"/manage/queues/{busy.pk}/")
    audit.check(page, "queue dashboard")
    page.fill("#id_settings-overlap", "0")
    page.click("button:has-text('Save settings')")
    page.wait_for_selector(".error-summary")
    audit.check(page, "queue dashboard after a settings error")
    page.fill("#id_members-usernames", "rae nobody")
    page.click("button:has-text('Save members')")
    page.wait_for_selector("#members-errors")
    audit.check(page, "queue dashboard after a members error")
    page.click("button:has-text('Pause')")
    page.wait_for_selector(".msg-success")
    audit.check(page, "queue dashboard paused, with a message")
    _goto(page, base, f"/manage/queues/{empty.pk}/")
    audit.check(page, "empty queue dashboard")
    _goto(page, base, "/manage/queues/new/")
    audit.check(page, "/manage/queues/new/")
    page.fill("#id_name", "Needs a rubric")
    page.check("input[name=prompts_by][value=tags]")
    page.click("button:has-text('Create queue')")
    page.wait_for_selector(".error-summary")
    audit.check(page, "/manage/queues/new/ after an error")
    context.close()

    context, page = login(browser, base, "rita", "/manage/")
    audit.check(page, "/manage/ (researcher)")
    _goto(page, base, f"/manage/queues/{busy.pk}/")
    audit.check(page, "queue dashboard (researcher, read-only)")
    context.close()
    audit.assert_clean()


def test_generation_and_import_pages(browser, world, settings):
    base, audit = world["base"], Audit()
    context, page = login(browser, base, "ada", "/manage/generation/")
    audit.check(page, "/manage/generation/ empty")
    page.check("input[name=prompts_by][value=ids]")
    page.fill("#id_samples_per_prompt", "99")
    page.click("button:has-text('Start')")
    page.wait_for_selector(".error-summary")
    audit.check(page, "/manage/generation/ after an error")

    settings.PREFLAB_CONFIRM_PROMPTS = 1
    _goto(page, base, "/manage/generation/")
    page.check("input[name=generators][value=bundled]")
    page.click("button:has-text('Start')")
    page.wait_for_selector("#confirm")
    audit.check(page, "/manage/generation/ asking to confirm a large job")

    running = GenerationJobFactory(
        status=GenerationJob.Status.RUNNING,
        total=96,
        done=24,
        completion_tokens=3100,
        generation_seconds=14.2,
        started_at=timezone.now() - timedelta(seconds=30),
        errors=[],
    )
    running.generators.add(GeneratorFactory(name="smollm2-135m-instruct", backend=Generator.Backend.BUNDLED))
    failed = GenerationJobFactory(
        status=GenerationJob.Status.FAILED, total=8, done=6, errors=[{"prompt_id": 1, "error": "too long"}]
    )
    failed.generators.add(running.generators.first())
    _goto(page, base, "/manage/generation/")
    page.click(f"#job-{failed.pk} summary")
    audit.check(page, "/manage/generation/ with jobs")
    GenerationJob.objects.filter(pk=running.pk).update(done=48)
    page.wait_for_function("() => document.getElementById('jobs').innerText.includes('48 / 96')")
    audit.check(page, "/manage/generation/ after the jobs table refreshed")

    _goto(page, base, "/manage/import/")
    audit.check(page, "/manage/import/ empty")
    page.set_input_files(
        "#id_prompts-file",
        files=[{"name": "bad.jsonl", "mimeType": "application/jsonl", "buffer": b'{"messages": 3}\n{nope\n'}],
    )
    page.click("button:has-text('Import prompts')")
    page.wait_for_selector("#import-failed-card")
    audit.check(page, "/manage/import/ after a refused file")
    page.click("button:has-text('Import responses')")
    page.wait_for_selector(".error-summary")
    audit.check(page, "/manage/import/ after a missing file")
    context.close()
    audit.assert_clean()


def test_export_page_and_api_docs(browser, world):
    base, audit = world["base"], Audit()
    context, page = login(browser, base, "rita", "/export/")
    audit.check(page, "/export/ empty")
    page.fill("#id_min_agreement", "7")
    page.fill("#id_test_fraction", "0.9")
    page.click("button:has-text('Create export')")
    page.wait_for_selector(".error-summary")
    audit.check(page, "/export/ after an error")

    ExportRun.objects.create(
        name="helpful-v1",
        status=ExportRun.Status.SUCCEEDED,
        row_count=12,
        sha256="ab" * 32,
        files=[{"path": "data/train.jsonl", "rows": 10}, {"path": "README.md", "rows": None}],
    )
    ExportRun.objects.create(name="broken", status=ExportRun.Status.FAILED, error="judgment 7 has no order")
    running = ExportRun.objects.create(
        name="big", status=ExportRun.Status.RUNNING, judgments_total=100, judgments_done=40
    )
    _goto(page, base, f"/export/?run={running.pk}#run-{running.pk}")
    audit.check(page, "/export/ with runs, one marked")
    ExportRun.objects.filter(pk=running.pk).update(status=ExportRun.Status.SUCCEEDED, row_count=3)
    page.wait_for_function("() => document.getElementById('runs').dataset.active === '0'")
    audit.check(page, "/export/ after the runs table refreshed")

    _goto(page, base, "/api/docs/")
    page.wait_for_selector("#operations .opblock")
    audit.check(page, "/api/docs/")
    operation = page.locator("#operations .opblock-patch").first
    operation.locator(".opblock-summary-control").click()
    operation.locator(".try-out__btn").click()
    page.wait_for_selector("#operations .opblock-patch .execute")
    audit.check(page, "/api/docs/ with an operation open to try out")
    context.close()
    audit.assert_clean()


def test_judging_page(browser, live_server):
    """The rater's judging page (templates/labeling/_workbench.html): a pair, a ranking, an item
    behind a content warning, and after a server-side validation error."""
    base, audit = live_server.url, Audit()
    rater = RaterFactory(username="judge")
    pairs = QueueFactory(name="Pairs", members=[rater], guidelines="Prefer **clear** answers.")
    CriterionFactory(rubric=pairs.rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful")
    CriterionFactory(
        rubric=pairs.rubric, key="honest", kind=Criterion.Kind.PREFERENCE, question="Which is more honest?"
    )
    CriterionFactory(rubric=pairs.rubric, key="quality", kind=Criterion.Kind.LIKERT, question="Quality")
    for n in range(2):
        QueueItemFactory(queue=pairs, comparison=make_pair(texts=(f"Answer {n} one.", f"Answer {n} two.")))
    ranking = QueueFactory(name="Rank four", kind=Queue.Kind.RANKING, members=[rater], rubric=RubricFactory())
    prompt = PromptFactory(messages=[{"role": "user", "content": "Name a prime number."}])
    candidates = [CandidateFactory(prompt=prompt, text=t) for t in ("2", "Seven.", "9 is prime.", "No idea.")]
    QueueItemFactory(queue=ranking, comparison=make_comparison(prompt, candidates))
    warned = QueueFactory(name="Battle stories", members=[rater], content_warning="violent descriptions")
    QueueItemFactory(queue=warned, comparison=make_pair(texts=("The battle was grim.", "No.")))

    context, page = login(browser, base, "judge", "/rate/")
    _goto(page, base, f"/rate/{pairs.pk}/")
    page.wait_for_selector("#workbench[data-ready]")
    audit.check(page, "judging a pair")
    # A submit without an answer, past the page's own checks: the server refuses it (400).
    page.evaluate("document.getElementById('judgment-form').submit()")
    page.wait_for_selector("#form-error")
    audit.check(page, "judging a pair after a validation error")
    _goto(page, base, f"/rate/{ranking.pk}/")
    page.wait_for_selector("#workbench[data-ready]")
    audit.check(page, "judging a ranking")
    _goto(page, base, f"/rate/{warned.pk}/")
    page.wait_for_selector("#workbench[data-ready]")
    audit.check(page, "judging behind a content warning")
    page.keyboard.press("V")
    audit.check(page, "judging after revealing the warned content")
    context.close()
    audit.assert_clean()


def test_chat_pages(browser, live_server, fake_backend, monkeypatch):
    """The conversation pages (templates/labeling/chat_*.html): the list, a session whose replies
    are ready to rank, one waiting for the model (and the replies htmx swaps in), a failed turn,
    a reply to write, a refused ranking, the go-back confirmation, a finished session, narrow."""
    from model_runner.services import generator_get_bundled

    base, audit = live_server.url, Audit()
    trainer = RaterFactory(username="trina")
    rubric = RubricFactory()
    CriterionFactory(rubric=rubric, key="harmful", kind=Criterion.Kind.FLAG, question="Harmful")
    CriterionFactory(rubric=rubric, key="honest", kind=Criterion.Kind.PREFERENCE, question="Honest?")
    CriterionFactory(rubric=rubric, key="quality", kind=Criterion.Kind.LIKERT, question="Quality")
    queue = session_template_create(
        name="Chat with the model",
        rubric=rubric,
        generators=[generator_get_bundled()],
        alternatives=3,
        members=[trainer],
        system_prompt="Be brief.",
        guidelines="Prefer **short** replies.",
    )

    def start(text: str, **kwargs: Any) -> int:
        session = session_services.session_start(trainer=trainer, queue=queue)
        session_services.session_say(session=session, text=text, **kwargs)
        return session.pk

    done = start("An old conversation", generate=False)
    session_services.session_finish(session=queue.sessions.get(pk=done))
    ready = start("Write a haiku about **autumn**.")
    failed = start("This is TOO LONG for the model.")
    writing = start("Say hello as a pirate.", generate=False)
    enqueue = session_services._enqueue
    monkeypatch.setattr(session_services, "_enqueue", lambda ids, *rest: None)
    waiting = start("A slow question")
    monkeypatch.setattr(session_services, "_enqueue", enqueue)

    context, page = login(browser, base, "trina", "/chat/")
    audit.check(page, "/chat/")
    _goto(page, base, f"/chat/{ready}/")
    page.wait_for_selector("#turn-live[data-state=ready]")
    audit.check(page, "a turn to rank")
    page.evaluate("document.getElementById('judgment-form').submit()")  # past the browser's checks
    page.wait_for_selector("#form-error")
    audit.check(page, "a turn to rank after a refused ranking")
    _goto(page, base, f"/chat/{waiting}/")
    page.wait_for_selector("#turn-live[data-state=waiting]")
    audit.check(page, "a turn the model is writing")
    turn_id = int(page.get_attribute("#turn-live", "data-turn") or 0)
    turns_generate(turn_id=turn_id)
    page.wait_for_selector("#turn-live[data-state=ready]")
    audit.check(page, "the replies swapped in by the poll")
    _goto(page, base, f"/chat/{failed}/")
    audit.check(page, "a failed turn")
    _goto(page, base, f"/chat/{writing}/")
    audit.check(page, "a reply to write")
    page.click(".go-back summary >> nth=0")
    audit.check(page, "the go-back confirmation")
    _goto(page, base, f"/chat/{done}/")
    audit.check(page, "a finished conversation")
    context.close()

    context, page = login(browser, base, "trina", f"/chat/{ready}/", viewport={"width": 390, "height": 844})
    page.wait_for_selector("#turn-live[data-state=ready]")
    audit.check(page, "a turn to rank, narrow")
    context.close()
    audit.assert_clean()
