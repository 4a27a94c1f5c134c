"""GET /metrics: the families it names, their values after a lease, a judgment and an export, who
may scrape it, a scrape that survives a dead broker or database, and counters that add up across
gunicorn's workers (multiprocess mode, deploy/gunicorn.conf.py)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from export.models import ExportRun
from labeling import metrics
from labeling.benchstats import free_port
from labeling.models import Criterion
from model_runner.models import GenerationJob
from tests.factories import (
    CriterionFactory,
    GenerationJobFactory,
    GeneratorFactory,
    QueueFactory,
    QueueItemFactory,
    make_pair,
)
from tests.real_workers import database_url

ROOT = Path(settings.BASE_DIR)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def scrape(client: Client | None = None, **headers: str) -> dict:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return samples(response.content.decode())


@pytest.fixture
def fs_broker(settings, tmp_path):
    """A filesystem broker of the test's own (the scrape reads settings.CELERY_BROKER_URL)."""
    folder = tmp_path / "broker"
    folder.mkdir()
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder),
        "control_folder": str(folder),
        "store_processed": False,
    }
    return settings


def _publish(queue: str, n: int) -> None:
    with Connection(
        settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS
    ) as conn:
        simple = conn.SimpleQueue(queue)
        for i in range(n):
            simple.put({"n": i})
        simple.close()


@pytest.mark.django_db
def test_lease_judgment_export_and_generation_show_in_the_scrape(
    fs_broker, rater, rater_api, researcher_api, django_capture_on_commit_callbacks
):
    queue = QueueFactory(members=[rater], overlap=1)
    CriterionFactory(rubric=queue.rubric, key="helpful", kind=Criterion.Kind.PREFERENCE, required=True)
    for texts in [("One A.", "One B."), ("Two A.", "Two B.")]:
        QueueItemFactory(queue=queue, comparison=make_pair(texts=texts))
    GeneratorFactory(queue="gpu-a100")
    job = GenerationJobFactory(
        status=GenerationJob.Status.RUNNING, completion_tokens=300, generation_seconds=4.0
    )
    GenerationJobFactory(status=GenerationJob.Status.SUCCEEDED, completion_tokens=100, generation_seconds=6.0)
    _publish("gpu-a100", 3)
    _publish("default", 1)

    before = scrape()
    assert value(before, "preflab_database_up") == 1
    assert value(before, "preflab_broker_up") == 1
    assert value(before, "preflab_open_leases") == 0
    assert value(before, "preflab_judgments_last_minute") == 0
    # Every base queue and the pinned one, each with what waits in it.
    depths = {
        q: value(before, "preflab_celery_queue_length", queue=q) for q in ("default", "gpu", "interactive")
    }
    assert depths == {"default": 1, "gpu": 0, "interactive": 0}
    assert value(before, "preflab_celery_queue_length", queue="gpu-a100") == 3
    assert ("preflab_celery_queue_length", frozenset({("queue", "gpu")})) in before
    assert value(before, "preflab_generation_completion_tokens_total") == 400
    assert value(before, "preflab_generation_seconds_total") == 10.0
    assert value(before, "preflab_generation_tokens_per_second") == 75.0  # the running job's 300 / 4
    job.status = GenerationJob.Status.SUCCEEDED
    job.save(update_fields=["status"])

    # A lease.
    leased = rater_api.post(f"/api/v1/queues/{queue.pk}/next/")
    assert leased.status_code == 201, leased.content
    after_lease = scrape()
    assert value(after_lease, "preflab_open_leases") == 1
    assert value(after_lease, "preflab_generation_tokens_per_second") == 0
    next_key = {"view": "api-queue-next", "method": "POST", "status": "201"}
    assert (
        value(after_lease, "django_http_responses_total_by_status_view_method_total", **next_key)
        - value(before, "django_http_responses_total_by_status_view_method_total", **next_key)
        == 1
    )
    latency = "django_http_requests_latency_seconds_by_view_method_count"
    assert (
        value(after_lease, latency, view="api-queue-next", method="POST")
        - value(before, latency, view="api-queue-next", method="POST")
        == 1
    )

    # A judgment: the lease is closed, the minute counts one.
    judged = rater_api.post(
        f"/api/v1/assignments/{leased.json()['id']}/judgment/",
        {"preference": -2, "criteria": {"helpful": -1}},
        format="json",
    )
    assert judged.status_code == 201, judged.content
    after_judgment = scrape()
    assert value(after_judgment, "preflab_open_leases") == 0
    assert value(after_judgment, "preflab_judgments_last_minute") == 1

    # An export (run by the eager task when the request's transaction commits).
    with django_capture_on_commit_callbacks(execute=True):
        created = researcher_api.post("/api/v1/exports/", {"name": "snap", "format": "trl"}, format="json")
    assert created.status_code in (201, 202), created.content
    run = ExportRun.objects.get()
    assert run.status == ExportRun.Status.SUCCEEDED, run.error
    # Make its duration a known 10 s: within the 15 s bucket, outside the 5 s one.
    assert run.finished_at is not None
    ExportRun.objects.filter(pk=run.pk).update(created_at=run.finished_at - timedelta(seconds=10))
    after_export = scrape()
    hist = "preflab_export_duration_seconds"
    assert value(after_export, f"{hist}_count", status="succeeded") == 1
    assert value(after_export, f"{hist}_sum", status="succeeded") == pytest.approx(10.0)
    assert value(after_export, f"{hist}_bucket", status="succeeded", le="5.0") == 0
    assert value(after_export, f"{hist}_bucket", status="succeeded", le="15.0") == 1
    assert value(after_export, f"{hist}_bucket", status="succeeded", le="+Inf") == 1
    assert value(after_export, f"{hist}_count", status="failed") == 0


@pytest.mark.django_db
def test_an_expired_lease_is_not_open(rater, rater_api, fs_broker):
    queue = QueueFactory(members=[rater], overlap=1)
    QueueItemFactory(queue=queue, comparison=make_pair())
    assert rater_api.post(f"/api/v1/queues/{queue.pk}/next/").status_code == 201
    assert value(scrape(), "preflab_open_leases") == 1
    from labeling.models import Assignment

    Assignment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert value(scrape(), "preflab_open_leases") == 0


@pytest.mark.django_db
def test_queue_depth_on_the_configured_broker():
    """On whatever broker the suite runs with (Redis in CI): a queue of the test's own."""
    name = f"metrics-test-{uuid.uuid4().hex[:8]}"
    assert metrics.queue_depths([name]) == {name: 0}  # unknown to the broker yet
    _publish(name, 2)
    try:
        assert metrics.queue_depths([name]) == {name: 2}
    finally:
        with Connection(
            settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS
        ) as conn:
            conn.SimpleQueue(name).clear()


def test_scrape_answers_when_database_and_broker_are_down(settings):
    # No ``db`` fixture: pytest-django refuses every query, as a database that is down would.
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    found = scrape()
    assert value(found, "preflab_database_up") == 0
    assert value(found, "preflab_broker_up") == 0
    assert not any(name.startswith(("preflab_open_leases", "preflab_celery_queue")) for name, _ in found)


@pytest.mark.django_db
def test_without_a_token_only_unproxied_loopback_may_scrape(settings, fs_broker):
    settings.PREFLAB_METRICS_TOKEN = ""
    settings.ALLOWED_HOSTS = ["preflab.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    # By address over plain HTTP: no host check, no HTTPS redirect.
    assert client.get("/metrics", HTTP_HOST="127.0.0.1:8000").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    # Through a proxy on the same host: refused, whoever the visitor is.
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403


@pytest.mark.django_db
def test_with_a_token_only_its_bearer_may_scrape(settings, fs_broker):
    token = secrets.token_urlsafe(32)
    settings.PREFLAB_METRICS_TOKEN = token
    client = Client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {token}").status_code == 401
    allowed = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="10.0.0.7")
    assert allowed.status_code == 200
    assert b"preflab_database_up 1.0" in allowed.content


# --- gunicorn, several workers ---------------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


def _login_count(base: str) -> float:
    status, text = _get(f"{base}/metrics")
    assert status == 200, status
    return value(
        samples(text),
        "django_http_responses_total_by_status_view_method_total",
        view="login",
        method="GET",
        status="200",
    )


@pytest.mark.django_db(transaction=True)
def test_counters_add_up_across_gunicorn_workers(tmp_path):
    """Three workers serve the requests; every scrape, whichever worker answers it, counts all of
    them, and still does after a worker is killed and replaced."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_COOKIES": "0",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": "filesystem://",
        "PREFLAB_VAR_DIR": str(tmp_path / "var"),
        "PREFLAB_CACHE_URL": "locmem://",
        "HOME": str(tmp_path),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    stale = tmp_path / "var" / "prometheus" / "web"
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"left over from an earlier run")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [str(gunicorn), "labeling.wsgi", "--config", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "3", "--timeout", "60"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while _get(f"{base}/healthz")[0] != 200:
            assert server.poll() is None and time.monotonic() < deadline, (
                tmp_path / "gunicorn.log"
            ).read_text()
            time.sleep(0.2)
        assert _login_count(base) == 0  # the earlier run's file was deleted at start

        made = 0
        with ThreadPoolExecutor(6) as pool:
            for _ in range(4):
                statuses = list(pool.map(lambda _: _get(f"{base}/accounts/login/")[0], range(15)))
                assert statuses == [200] * 15
                made += 15
                counts = [_login_count(base) for _ in range(5)]
                assert counts == [made] * 5, counts
        # The requests were spread: more than one worker wrote counters.
        pids = {p.name.rsplit("_", 1)[1].removesuffix(".db") for p in stale.glob("counter_*.db")}
        assert len(pids) >= 2, pids

        # Kill a worker: gunicorn starts another; its counts stay in the total.
        victim = psutil.Process(server.pid).children()[0]
        victim.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (
            victim.pid in {c.pid for c in psutil.Process(server.pid).children()}
            or len(psutil.Process(server.pid).children()) < 3
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert [_login_count(base) for _ in range(5)] == [made] * 5
        assert _get(f"{base}/accounts/login/")[0] == 200
        assert _login_count(base) == made + 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
