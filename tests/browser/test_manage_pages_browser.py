"""Admin and researcher pages in a real browser: the API docs without the internet, the export
page refreshing itself and landing on a new run, and forms that put the focus on what needs
fixing or answering."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from export.models import ExportRun
from model_runner.models import Generator
from tests.browser.helpers import login
from tests.factories import AdminFactory, GeneratorFactory, PromptFactory, ResearcherFactory, RubricFactory

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

LOCAL = {"127.0.0.1", "localhost"}


def test_api_docs_render_with_nothing_but_localhost(browser, live_server):
    """Swagger UI comes from our own static files: with every other host unreachable, the page
    still lists the operations (it was blank offline when it loaded them from a CDN)."""
    context = browser.new_context()
    elsewhere: list[str] = []

    def only_local(route):
        if urlparse(route.request.url).hostname in LOCAL:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.set_default_timeout(20000)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector("#operations .opblock")
    assert page.locator("#operations .opblock").count() > 30
    summary = page.locator(".opblock-summary-path", has_text="/api/v1/queues/{queue_id}/").first
    assert summary.is_visible()
    assert page.locator("h1", has_text="Preflab API").is_visible()
    assert elsewhere == []  # nothing was even asked of another host
    context.close()


def test_export_page_updates_runs_without_a_reload_and_lands_on_a_new_run(browser, live_server):
    researcher = ResearcherFactory(username="rita")
    waiting = ExportRun.objects.create(created_by=researcher, name="waiting-run")
    context, page = login(browser, live_server.url, "rita", "/export/")
    row = page.locator(f"#run-{waiting.pk}")
    assert "Queued" in row.inner_text()
    assert page.get_attribute("#runs", "data-active") == "1"

    # The researcher types while the run finishes: the row changes, the form keeps the text,
    # and the change is announced.
    page.fill("#id_name", "half-typed")
    ExportRun.objects.filter(pk=waiting.pk).update(
        status=ExportRun.Status.SUCCEEDED, row_count=7, sha256="ab" * 32, files=[]
    )
    page.wait_for_function(
        "id => (document.getElementById(id) || {}).dataset.status === 'succeeded'", arg=f"run-{waiting.pk}"
    )
    assert "Succeeded" in page.inner_text(f"#run-{waiting.pk}")
    assert page.input_value("#id_name") == "half-typed"
    assert page.inner_text("#refresh-status") == f"Export {waiting.pk} (waiting-run): Succeeded."
    assert page.get_attribute("#runs", "data-active") == "0"  # and it stops asking

    # A new export: the page lands on its row, marked and scrolled to.
    page.fill("#id_name", "fresh-export")
    page.click("button:has-text('Create export')")
    page.wait_for_selector("tr.current")
    created = ExportRun.objects.exclude(pk=waiting.pk).get()
    assert page.url.endswith(f"/export/?run={created.pk}#run-{created.pk}")
    assert page.get_attribute("tr.current", "id") == f"run-{created.pk}"
    assert page.get_attribute("tr.current", "aria-current") == "true"
    assert f"Export {created.pk} (fresh-export) was queued" in page.inner_text(".messages")
    context.close()


def test_an_error_summary_takes_the_focus_and_leads_to_each_field(browser, live_server):
    AdminFactory(username="ada")
    RubricFactory(name="hhh")
    context, page = login(browser, live_server.url, "ada", "/manage/queues/new/")
    page.fill("#id_name", "Needs tags")
    page.select_option("#id_rubric", label="hhh v1")
    page.check("input[name=prompts_by][value=tags]")
    page.fill("#id_overlap", "0")
    page.click("button:has-text('Create queue')")
    page.wait_for_selector(".error-summary")
    assert page.evaluate("document.activeElement.id") == "form-errors"
    links = page.locator(".error-summary a")
    assert links.count() == 2
    page.click(".error-summary a[href='#id_tags']")
    assert page.evaluate("document.activeElement.id") == "id_tags"
    page.click(".error-summary a[href='#id_overlap']")
    assert page.evaluate("document.activeElement.id") == "id_overlap"
    assert page.get_attribute("#id_overlap", "aria-invalid") == "true"
    context.close()


def test_a_large_generation_job_asks_first_then_keeps_the_choice(browser, live_server, settings):
    settings.PREFLAB_CONFIRM_PROMPTS = 2
    AdminFactory(username="ada")
    PromptFactory.create_batch(3, tags=["math"])
    # A model that cannot load: the (eager) batches fail at once instead of generating.
    local = GeneratorFactory(
        name="local-model", backend=Generator.Backend.TRANSFORMERS, model_path="/nowhere"
    )
    context, page = login(browser, live_server.url, "ada", "/manage/generation/")
    page.check("input[name=prompts_by][value=tags]")
    page.fill("#id_tags", "math")
    page.check(f"input[name=generators][value='{local.pk}']")
    page.click("button:has-text('Start')")
    page.wait_for_selector("#confirm")
    assert page.evaluate("document.activeElement.id") == "confirm"
    assert "3 prompts × 1 generator × 4 samples = 12 candidates" in page.inner_text("#confirm")
    page.click("#confirm button")
    page.wait_for_selector(".msg-success")
    assert "started: 12 candidates to make" in page.inner_text(".msg-success")
    # The form still says "tags: math", not "All prompts".
    assert page.is_checked("input[name=prompts_by][value=tags]")
    assert page.input_value("#id_tags") == "math"
    assert page.is_checked(f"input[name=generators][value='{local.pk}']")
    context.close()
