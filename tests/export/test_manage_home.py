"""``/manage/``: where admins and researchers start, each area's state at a glance; and the 403,
404 and 500 pages, which keep the menu and offer a way back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client, RequestFactory
from django.utils import timezone
from django.views.defaults import server_error

from export.models import ExportRun
from labeling.models import Queue
from model_runner.models import GenerationJob, Generator
from tests.factories import (
    CandidateFactory,
    GenerationJobFactory,
    GeneratorFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
)

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _world():
    active = QueueFactory(name="Helpful pairs", overlap=2, priority=5)
    QueueItemFactory.create_batch(2, queue=active)
    QueueFactory(name="On hold", status=Queue.Status.PAUSED)
    QueueFactory(name="Done and dusted", status=Queue.Status.CLOSED)
    running = GenerationJobFactory(status=GenerationJob.Status.RUNNING, total=40, done=10, errors=[])
    GenerationJobFactory(
        status=GenerationJob.Status.FAILED,
        total=8,
        done=6,
        errors=[{"error": "x"}],
        finished_at=timezone.now(),
    )
    imported = GeneratorFactory(name="elsewhere", backend=Generator.Backend.IMPORTED)
    ready = PromptFactory(collection="evals")
    CandidateFactory.create_batch(2, prompt=ready, generator=imported)
    PromptFactory()  # no responses yet
    old = PromptFactory()
    type(old).objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    ExportRun.objects.create(name="helpful-v1", status=ExportRun.Status.SUCCEEDED, row_count=12)
    ExportRun.objects.create(name="helpful-v2")
    return running


def test_admin_sees_every_area_with_its_state(admin_user):
    running = _world()
    response = _client(admin_user).get("/manage/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/manage/" aria-current="page">Manage</a>' in html  # the menu links it
    # Queues: active and paused ones, with progress; closed ones only counted.
    assert "1 active · 1 paused · 1 closed" in html
    assert "Helpful pairs" in html and "On hold" in html and "Done and dusted" not in html
    assert "0 / 4 (0.0%)" in html
    # Generation: the running job, and the last one that finished.
    assert f"Job {running.pk}: Running, 10 of 40 candidates" in html
    assert "failed" in html and "6 of 8 candidates, 1 error." in html
    # Prompts and responses: counts, and how many prompts are ready for a queue (the queue's two
    # items brought two prompts with two imported responses each).
    assert "5 prompts in 1 collection, 4 added in the last day" in html
    assert "6 responses: 0 generated, 6 imported, 0 written by raters" in html
    assert "3 prompts with two or more responses (ready for a queue); 2 with fewer" in html
    # Exports: the newest runs, each linking to its row on the export page.
    runs = list(ExportRun.objects.order_by("pk"))
    assert "2 in all, 1 queued or running." in html
    assert f'href="/export/?run={runs[0].pk}#run-{runs[0].pk}"' in html and "succeeded, 12 rows" in html
    for link in ("/manage/queues/", "/manage/generation/", "/manage/import/", "/export/", "/admin/"):
        assert f'href="{link}"' in html


def test_researchers_see_their_areas_only(researcher):
    _world()
    html = _client(researcher).get("/manage/").content.decode()
    assert "Helpful pairs" in html and "helpful-v1" in html
    assert 'href="/manage/generation/"' not in html and 'href="/manage/import/"' not in html
    assert 'href="/admin/"' not in html
    assert "Create a queue" not in html


def test_an_empty_installation(admin_user):
    html = _client(admin_user).get("/manage/").content.decode()
    assert "No queue is active or paused." in html and 'href="/manage/queues/new/"' in html
    assert "No job is running." in html and "No exports yet." in html
    assert "0 prompts in 0 collections" in html


def test_raters_get_a_403_page_with_the_menu_and_a_way_back(rater):
    response = _client(rater).get("/manage/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "You may not open this page" in html
    assert "Only admins and researchers manage Preflab; raters work on /rate/." in html
    assert '<nav aria-label="Main">' in html and 'href="/rate/"' in html  # menu and way back
    assert "log in as someone else" in html


def test_anonymous_users_are_sent_to_log_in():
    response = Client().get("/manage/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_404_page_keeps_the_menu(admin_user):
    response = _client(admin_user).get("/manage/nowhere/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Nothing here" in html and "<code>/manage/nowhere/</code>" in html
    assert '<nav aria-label="Main">' in html and 'href="/manage/">Manage</a>:' in html
    # Signed out: no menu, but a way to log in.
    anonymous = Client().get("/nowhere/").content.decode()
    assert '<nav aria-label="Main">' not in anonymous and "/accounts/login/?next=/nowhere/" in anonymous


def test_500_page_renders_without_a_request_context():
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
