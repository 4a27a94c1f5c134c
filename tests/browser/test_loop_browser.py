"""The whole loop in a browser, one person at a time, through the pages only.

An admin imports prompts and responses made elsewhere and builds a queue; a rater judges every pair
with the keyboard; a researcher exports the judgments and downloads the snapshot. (Generation is
left out: it needs a worker, and tests/browser/test_manage_browser.py covers its page.)
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from comparisons.models import Candidate
from labeling.models import Judgment, Queue
from tests.browser.helpers import login
from tests.factories import AdminFactory, RaterFactory, ResearcherFactory, RubricFactory

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_import_queue_judge_export(browser, live_server, tmp_path):
    base = live_server.url
    AdminFactory(username="ada")
    RaterFactory(username="raj")
    ResearcherFactory(username="rhea")
    RubricFactory(name="Helpfulness")

    # The admin imports two prompts and two responses to each, from files.
    context, page = login(browser, base, "ada", "/manage/import/")
    prompts = _write_jsonl(
        tmp_path / "prompts.jsonl",
        [
            {"id": "q-1", "messages": [{"role": "user", "content": "Name a prime number."}]},
            {"id": "q-2", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
        ],
    )
    page.set_input_files("#id_prompts-file", prompts)
    page.fill("#id_prompts-collection", "loop")
    page.click("#prompts-form button[type=submit]")
    assert "prompts.jsonl: 2 new prompts, 0 already there." in page.inner_text(".msg-success")
    responses = _write_jsonl(
        tmp_path / "responses.jsonl",
        [
            {"prompt_id": "q-1", "text": "7 is prime.", "generator": "model-a"},
            {"prompt_id": "q-1", "text": "9 is prime.", "generator": "model-b"},
            {"prompt_id": "q-2", "text": "Paris.", "generator": "model-a"},
            {"prompt_id": "q-2", "text": "Lyon.", "generator": "model-b"},
        ],
    )
    page.set_input_files("#id_candidates-file", responses)
    page.click("#candidates-form button[type=submit]")
    assert "responses.jsonl: 4 new responses, 0 already there." in page.inner_text(".msg-success")

    # ... and builds a pairwise queue of that collection for the rater.
    page.goto(f"{base}/manage/queues/")
    page.click("text=New queue")
    page.fill("#id_name", "Loop pairs")
    page.select_option("#id_rubric", label="Helpfulness v1")
    page.fill("#id_overlap", "1")
    page.check("input[name=prompts_by][value=collection]")
    page.select_option("#id_collection", "loop")
    page.check("label:has-text('raj') input")
    page.click("#queue-form button[type=submit]")
    assert "Queue 'Loop pairs' created with 2 items." in page.inner_text(".msg-success")
    context.close()

    # The rater judges both pairs with the keyboard: the right-hand answer is better each time.
    context, page = login(browser, base, "raj", "/rate/")
    queue = Queue.objects.get(name="Loop pairs")
    page.goto(f"{base}/rate/{queue.pk}/")
    for _ in range(2):
        page.wait_for_selector("#workbench[data-ready]")
        before = page.get_attribute("#workbench", "data-assignment")
        page.wait_for_timeout(250)
        page.keyboard.press("6")  # B better
        page.keyboard.press("Enter")
        page.wait_for_function(
            "b => { const w = document.getElementById('workbench');"
            " return w && w.dataset.ready && (w.dataset.assignment !== b || w.dataset.done); }",
            arg=before,
        )
    page.wait_for_selector("text=Nothing left")
    assert Judgment.objects.filter(assignment__rater__username="raj").count() == 2
    context.close()

    # The researcher exports the queue as a TRL preference dataset and downloads it.
    context, page = login(browser, base, "rhea", "/export/")
    page.fill("#id_name", "loop-prefs")
    page.select_option("#id_queues", label="Loop pairs")
    page.click("#export-form button[type=submit]")
    page.wait_for_selector(".msg-success")
    link = page.locator("a:has-text('loop-prefs.zip')")
    for _ in range(20):  # the export runs as a task; the page shows it when it has finished
        if link.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    with page.expect_download() as download:
        link.click()
    archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
    rows = [
        json.loads(line)
        for name in archive.namelist()
        if name.endswith(".jsonl")
        for line in archive.read(name).decode().splitlines()
        if line
    ]
    # What the rater saw on the right (B) is what the dataset says was chosen.
    shown_b = sorted(
        Candidate.objects.get(pk=j.assignment.shown_order[1]).text
        for j in Judgment.objects.select_related("assignment")
    )
    assert sorted(r["chosen"][-1]["content"] for r in rows) == shown_b
    assert len(rows) == 2
    context.close()
