"""Pinning a generator to a named Celery queue: its batches go there, the name is checked, and a
job whose queue no live worker serves says so (where the broker can tell)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.cache import cache

from model_runner import selectors
from model_runner.models import GenerationJob, Generator
from model_runner.tasks import generation_batch_task
from tests.factories import GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db

GENERATORS = "/api/v1/generators/"
JOBS = "/api/v1/generation-jobs/"


def test_queue_defaults_to_gpu_and_is_set_and_changed_through_the_api(admin_api):
    created = admin_api.post(GENERATORS, {"name": "small", "backend": "bundled"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["queue"] == "gpu"
    big = admin_api.post(
        GENERATORS,
        {"name": "big", "backend": "transformers", "model_path": "/models/big", "queue": "gpu-a100"},
        format="json",
    ).json()
    assert big["queue"] == "gpu-a100"
    changed = admin_api.patch(f"{GENERATORS}{big['id']}/", {"queue": "gpu-h200"}, format="json")
    assert changed.status_code == 200 and changed.json()["queue"] == "gpu-h200"
    assert Generator.objects.get(pk=big["id"]).queue == "gpu-h200"


@pytest.mark.parametrize(
    ("queue", "says"),
    [
        ("gpu a100", "is not a queue name"),
        ("gpu,default", "is not a queue name"),
        ("-gpu", "is not a queue name"),
        ("", "queue"),
        ("default", "exports and housekeeping"),
        ("interactive", "conversation turns"),
        ("q" * 101, "queue"),
    ],
)
def test_bad_queue_names_are_refused_naming_the_field(admin_api, queue, says):
    response = admin_api.post(GENERATORS, {"name": "x", "backend": "bundled", "queue": queue}, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body.get("field") == "queue" or "queue" in body.get("errors", body), body
    assert says in str(body)
    assert not Generator.objects.filter(name="x").exists()


def test_batches_go_to_each_generators_queue(admin_api, django_capture_on_commit_callbacks):
    prompts = PromptFactory.create_batch(3)
    GeneratorFactory.create(name="big", backend="transformers", model_path="/m/big", queue="gpu-a100")
    GeneratorFactory.create(name="small", backend="transformers", model_path="/m/small")
    with (
        mock.patch.object(generation_batch_task, "apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = admin_api.post(
            JOBS,
            {"prompts": [p.pk for p in prompts], "generators": ["big", "small"], "batch_size": 2},
            format="json",
        )
    assert response.status_code == 201, response.json()
    generators = {g.pk: g.name for g in Generator.objects.all()}
    sent = sorted(
        (generators[c.args[0][1]], len(c.args[0][2]), c.kwargs["queue"]) for c in send.call_args_list
    )
    assert sent == [
        ("big", 1, "gpu-a100"),
        ("big", 2, "gpu-a100"),
        ("small", 1, "gpu"),
        ("small", 2, "gpu"),
    ]


def test_an_explicit_queue_beats_the_task_route():
    # CELERY_TASK_ROUTES sends model_runner.tasks.* to gpu; the queue given when sending wins.
    router = generation_batch_task.app.amqp.router
    assert router.route({}, generation_batch_task.name)["queue"].name == "gpu"
    assert router.route({"queue": "gpu-a100"}, generation_batch_task.name)["queue"].name == "gpu-a100"


@pytest.fixture
def workers(monkeypatch):
    """A broker that answers remote control, with these workers' queues (replaced per test)."""
    cache.clear()
    answers: dict = {"replies": {}}
    calls: list[int] = []

    def active_queues():
        calls.append(1)
        return answers["replies"]

    monkeypatch.setattr(selectors, "_remote_control_works", lambda: True)
    monkeypatch.setattr(selectors, "_active_queues", active_queues)
    answers["calls"] = calls
    yield answers
    cache.clear()


def _queued_job(*generators):
    job = GenerationJob.objects.create(total=1)
    job.generators.set(generators)
    return job


def test_a_job_whose_queue_has_no_worker_says_so(admin_api, admin_user, client, workers):
    big = GeneratorFactory.create(name="big", backend="transformers", model_path="/m", queue="gpu-a100")
    small = GeneratorFactory.create(name="small", backend="transformers", model_path="/m")
    job = _queued_job(big, small)
    workers["replies"] = {"gpu0@host": [{"name": "gpu"}], "default@host": [{"name": "default"}]}

    notice = admin_api.get(f"{JOBS}{job.pk}/").json()["notice"]
    assert notice == (
        "Waiting: no worker serves the queue 'gpu-a100' (big): start one with "
        "celery -A labeling worker -Q gpu-a100. Its batches wait in the queue until then."
    )
    client.force_login(admin_user)
    page = client.get("/manage/generation/?fragment=jobs")
    assert "no worker serves the queue" in page.content.decode()
    # Cached: one question to the workers for both reads.
    assert len(workers["calls"]) == 1

    cache.clear()
    workers["replies"] = {"gpu0@host": [{"name": "gpu"}, {"name": "gpu-a100"}]}
    assert admin_api.get(f"{JOBS}{job.pk}/").json()["notice"] is None


def test_no_worker_at_all_and_finished_jobs(admin_api, workers):
    generator = GeneratorFactory.create(name="g", backend="transformers", model_path="/m")
    job = _queued_job(generator)
    workers["replies"] = None  # nobody answered
    assert "no worker serves the queue 'gpu' (g)" in admin_api.get(f"{JOBS}{job.pk}/").json()["notice"]
    GenerationJob.objects.filter(pk=job.pk).update(status=GenerationJob.Status.SUCCEEDED)
    assert admin_api.get(f"{JOBS}{job.pk}/").json()["notice"] is None


def test_filesystem_broker_and_eager_tasks_say_nothing(admin_api, monkeypatch):
    conf = generation_batch_task.app.conf
    monkeypatch.setitem(conf, "task_always_eager", False)
    # Celery reads CELERY_BROKER_URL from the environment before its own setting.
    monkeypatch.setenv("CELERY_BROKER_URL", "filesystem://")
    monkeypatch.setitem(conf, "broker_url", "filesystem://")
    with mock.patch.object(selectors, "_active_queues") as inspect:
        job = _queued_job(GeneratorFactory.create(name="g", backend="transformers", model_path="/m"))
        assert admin_api.get(f"{JOBS}{job.pk}/").json()["notice"] is None
    inspect.assert_not_called()
    monkeypatch.setitem(conf, "task_always_eager", True)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    assert selectors.live_queues() is None


def test_real_remote_control_on_redis_sees_no_worker_on_a_queue_of_its_own(monkeypatch):
    conf = generation_batch_task.app.conf
    if not str(conf.broker_url).startswith("redis"):
        pytest.skip("remote control needs Redis or RabbitMQ (CELERY_BROKER_URL=redis://...)")
    cache.clear()
    monkeypatch.setitem(conf, "task_always_eager", False)
    live = selectors.live_queues()
    assert live is not None
    assert "preflab-test-nobody-serves-this" not in live
    cache.clear()


def test_the_django_admin_checks_the_queue_and_defaults_it(client, admin_user):
    client.force_login(admin_user)
    form = {
        "name": "local",
        "backend": "transformers",
        "model_path": "/models/m",
        "sampling": "{}",
        "options": "{}",
        "queue": "gpu a100",
        "is_active": "on",
    }
    html = client.post("/admin/model_runner/generator/add/", form).content.decode()
    assert "is not a queue name" in html
    assert not Generator.objects.exists()
    form["queue"] = ""
    assert client.post("/admin/model_runner/generator/add/", form).status_code == 302
    assert Generator.objects.get().queue == "gpu"
