"""Admin pages in a real browser: starting and watching generation jobs, and a queue's dashboard.

Also saves the screenshots of both that the docs show (docs/screenshots/, with PREFLAB_SCREENSHOTS=1).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Judgment
from labeling.selectors import comparison_orders
from labeling.services import assignment_claim_next, judgment_submit
from model_runner.models import GenerationJob, Generator
from tests.browser.helpers import login
from tests.factories import (
    AdminFactory,
    GenerationJobFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def _admin_page(browser, base: str, path: str):
    AdminFactory(username="ada")
    return login(browser, base, "ada", path)


def test_start_a_job_and_watch_it_while_typing(browser, live_server, screenshots):
    PromptFactory.create_batch(3, tags=["math"], collection="evals-v1")
    GeneratorFactory(
        name="qwen2.5-0.5b-local", backend=Generator.Backend.TRANSFORMERS, model_path="/models/q"
    )
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
        status=GenerationJob.Status.FAILED,
        total=8,
        done=6,
        errors=[
            {"prompt_id": 12, "generator": "qwen2.5-0.5b-local", "error": "prompt is 9000 tokens long; ..."}
        ],
    )
    failed.generators.add(Generator.objects.get(name="qwen2.5-0.5b-local"))
    context, page = _admin_page(browser, live_server.url, "/manage/generation/")

    # The admin starts typing while the job runs; the table refreshes, the form keeps the text.
    page.check("input[name=prompts_by][value=tags]")
    page.fill("#id_tags", "math")
    row = page.locator(f"#job-{running.pk}")
    assert "24 / 96" in row.inner_text()
    GenerationJob.objects.filter(pk=running.pk).update(
        done=72, completion_tokens=9300, generation_seconds=42.0
    )
    page.wait_for_function(
        "id => (document.getElementById(id) || {}).innerText.includes('72 / 96')", arg=f"job-{running.pk}"
    )
    assert page.input_value("#id_tags") == "math"
    assert page.get_by_role("progressbar", name=f"Job {running.pk} progress").get_attribute("value") == "75"
    page.screenshot(path=str(screenshots / "manage-generation.png"), full_page=True)

    page.check(
        "input[name=generators][value='{}']".format(Generator.objects.get(name="qwen2.5-0.5b-local").pk)
    )
    page.fill("#id_samples_per_prompt", "2")
    page.click("button:has-text('Start')")
    page.wait_for_selector(".msg-success")
    started = GenerationJob.objects.order_by("-pk").first()
    assert started is not None and started.pk not in {running.pk, failed.pk}
    assert f"Generation job {started.pk} started: 6 candidates to make." in page.inner_text(".msg-success")
    assert started.prompts.count() == 3 and started.samples_per_prompt == 2

    # Once nothing runs, the table stops asking.
    GenerationJob.objects.update(status=GenerationJob.Status.SUCCEEDED)
    page.reload()
    assert page.get_attribute("#jobs", "data-active") == "0"
    context.close()


def test_queue_dashboard_draws_throughput_and_agreement(browser, live_server, screenshots):
    raters = [RaterFactory(username=name) for name in ("amara", "bo", "chen", "dara")]
    queue = QueueFactory(name="Helpfulness pairs", overlap=3, members=raters)
    QueueItemFactory.create_batch(10, queue=queue)
    # Rounds of one judgment each, so raters meet on items. Three prefer each pair's first
    # candidate (whichever side it was shown on); "dara" always prefers the other one.
    for _round in range(6):
        for rater in raters:
            assignment = assignment_claim_next(rater=rater, queue=queue)
            if assignment is None:
                continue
            first = comparison_orders([assignment.item.comparison_id])[assignment.item.comparison_id][0]
            shown_first = assignment.shown_order[0] == first
            preference = -2 if shown_first else 2  # negative: the response shown as A is better
            judgment_submit(
                assignment=assignment, preference=-preference if rater.username == "dara" else preference
            )
    # Spread the judgments over the last hours, as a day of work would.
    now = timezone.now()
    for i, judgment in enumerate(Judgment.objects.order_by("pk")):
        Judgment.objects.filter(pk=judgment.pk).update(created_at=now - timedelta(hours=(i * 7) % 9))
    context, page = _admin_page(browser, live_server.url, f"/manage/queues/{queue.pk}/")

    bars = page.locator("svg.chart rect.bar")
    assert bars.count() == 24
    heights = [float(bars.nth(i).get_attribute("height") or 0) for i in range(24)]
    assert max(heights) == 100 and sum(1 for h in heights if h > 0) >= 5
    rows = {
        cells[0]: cells
        for cells in (
            [
                c.strip()
                for c in page.locator("section[aria-label=Raters] tbody tr").nth(i).inner_text().split("\t")
            ]
            for i in range(4)
        )
    }
    assert set(rows) == {r.username for r in raters}
    assert rows["dara"][-1] == "0%"  # disagrees with everyone she met
    assert all(int(rows[name][-1].rstrip("%")) > 0 for name in ("amara", "bo", "chen"))
    header = page.locator("section[aria-label=Raters] thead th").last.inner_text()
    assert header == "Pairwise agreement with other raters"

    # Agreement per criterion: alpha bars with their 95% intervals, drawn, not just written.
    alpha = page.locator("#alpha-chart")
    assert alpha.is_visible()
    assert alpha.locator(".alpha-item").count() == 2  # overall and overall_direction
    bar = alpha.locator("rect.alpha-bar").first
    assert bar.bounding_box()["height"] > 0
    assert alpha.locator("line.ci").count() >= 3  # an interval: its line and two caps
    assert "alpha" in alpha.locator(".alpha-item title").first.text_content()
    # Side bias: one bar per rater, from the 50% line.
    sides = page.locator("#side-chart rect.side-bar")
    assert sides.count() == 4
    assert all((sides.nth(i).bounding_box() or {}).get("width", 0) > 0 for i in range(4))
    assert "won" in page.locator("#position-bias").inner_text()
    page.screenshot(path=str(screenshots / "manage-queue.png"), full_page=True)
    context.close()
