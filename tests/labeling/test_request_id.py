"""Request ids and JSON logs: ``X-Request-ID`` on every answer, the id on every log line, carried
into the tasks a request enqueues (eagerly in tests, and through a real task message as a worker
runs it), and nothing secret (an Authorization header, a query string) in the log."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from celery.app.trace import trace_task
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.test import Client
from django.urls import path
from kombu import Connection

from labeling.celery import app
from labeling.request_id import TASK_HEADER, JsonFormatter, RequestIdFilter, request_id

task_logger = logging.getLogger("tests.request_id")


@app.task(name="tests.request_id.child")
def child_task() -> None:
    task_logger.info("child ran")


@app.task(name="tests.request_id.parent")
def parent_task() -> None:
    task_logger.info("parent ran")
    child_task.delay()


def _enqueue_view(request: HttpRequest) -> HttpResponse:
    # As the services do: the task is enqueued when the transaction commits.
    transaction.on_commit(parent_task.delay)
    return HttpResponse("queued")


def _ok_view(request: HttpRequest) -> HttpResponse:
    task_logger.warning("inside the view")
    return HttpResponse("ok")


def _not_found_view(request: HttpRequest) -> HttpResponse:
    return HttpResponseNotFound("no such thing")


urlpatterns = [path("enqueue", _enqueue_view), path("ok", _ok_view), path("missing", _not_found_view)]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The root logger also writes here, filtered and formatted as ``PREFLAB_LOG_FORMAT=json`` does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.urls(__name__)
def test_a_given_request_id_is_echoed_and_a_missing_one_is_generated():
    client = Client()
    given = client.get("/ok", HTTP_X_REQUEST_ID="edge-7f3a.42_b")
    assert given["X-Request-ID"] == "edge-7f3a.42_b"

    first, second = client.get("/ok")["X-Request-ID"], client.get("/ok")["X-Request-ID"]
    assert len(first) == 32 and int(first, 16) >= 0  # uuid4 hex
    assert first != second


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("bad", ["", "has space", "a" * 129, "evil\\nline", "é", "id;drop", "x\n"])
def test_a_malformed_request_id_is_replaced(bad, json_log):
    response = Client().get("/ok", HTTP_X_REQUEST_ID=bad)
    rid = response["X-Request-ID"]
    assert rid != bad and len(rid) == 32
    assert all(line["request_id"] == rid for line in _lines(json_log))


@pytest.mark.urls(__name__)
def test_json_lines_carry_the_fields_and_the_request_line(json_log):
    before = datetime.now().astimezone()
    response = Client().get("/ok", HTTP_X_REQUEST_ID="req-1")
    assert response.status_code == 200

    view_line, request_line = _lines(json_log)
    assert view_line["level"] == "WARNING"
    assert view_line["logger"] == "tests.request_id"
    assert view_line["message"] == "inside the view"
    assert view_line["request_id"] == "req-1"
    stamp = datetime.fromisoformat(view_line["time"])
    assert stamp.utcoffset() == timedelta(0)  # UTC
    assert abs(stamp - before) < timedelta(minutes=1)

    assert request_line["logger"] == "preflab.requests"
    assert request_line["level"] == "INFO"
    assert request_line["request_id"] == "req-1"
    assert (request_line["method"], request_line["path"], request_line["status"]) == ("GET", "/ok", 200)
    assert isinstance(request_line["duration_ms"], float) and request_line["duration_ms"] >= 0
    assert request_line["message"] == f"GET /ok 200 {request_line['duration_ms']:.1f}ms"


@pytest.mark.urls(__name__)
def test_no_secret_reaches_the_log(json_log):
    client = Client()
    client.get("/ok?token=s3cr3t-query", HTTP_AUTHORIZATION="Bearer s3cr3t-header")
    # Django's own 404 line passes the request object (its text holds the query string) as an extra.
    client.get("/missing?token=s3cr3t-query", HTTP_AUTHORIZATION="Token s3cr3t-header")
    text = json_log.getvalue()
    assert "s3cr3t" not in text
    assert "token=" not in text
    lines = _lines(json_log)
    assert "django.request" in {line["logger"] for line in lines}  # the 404 line is there
    paths = [line["path"] for line in lines if line["logger"] == "preflab.requests"]
    assert paths == ["/ok", "/missing"]


def test_health_probes_log_nothing(json_log, db):
    client = Client()
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
    assert [line for line in _lines(json_log) if line["logger"] == "preflab.requests"] == []


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_tasks_a_request_enqueues_log_with_its_id(json_log):
    # No test transaction around the request: on_commit runs the task (eagerly) as in production.
    response = Client().get("/enqueue", HTTP_X_REQUEST_ID="req-with-tasks")
    assert response.status_code == 200
    by_message = {line["message"]: line for line in _lines(json_log)}
    assert by_message["parent ran"]["request_id"] == "req-with-tasks"
    assert by_message["child ran"]["request_id"] == "req-with-tasks"
    assert request_id.get() is None


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # send_task publishes
def test_the_id_travels_in_the_task_message_and_is_set_in_the_worker(json_log):
    """Published as the web does (before_task_publish), run as a worker does (task_prerun and
    task_postrun around the task, the message's headers as its request)."""
    token = request_id.set("req-from-web")
    try:
        with Connection("memory://") as conn:
            with conn.Producer() as producer:
                app.send_task(parent_task.name, producer=producer, queue="default")
            queue = conn.SimpleQueue("default")
            message = queue.get(timeout=2)
            queue.close()
    finally:
        request_id.reset(token)
    headers = message.headers
    assert headers[TASK_HEADER] == "req-from-web"

    assert request_id.get() is None  # a worker process, between tasks
    trace_task(parent_task, headers["id"], (), {}, request=headers, app=app)
    by_message = {line["message"]: line for line in _lines(json_log)}
    assert by_message["parent ran"]["request_id"] == "req-from-web"
    # The child it enqueued (eagerly here) carries the id on.
    assert by_message["child ran"]["request_id"] == "req-from-web"
    # Celery's own line for the task too.
    succeeded = [line for line in _lines(json_log) if line["logger"] == "celery.app.trace"]
    assert succeeded and all(line["request_id"] == "req-from-web" for line in succeeded)
    assert request_id.get() is None  # reset after the task


def test_a_task_message_without_an_id_or_with_a_malformed_one_sets_none(json_log):
    trace_task(child_task, "t-1", (), {}, request={"id": "t-1", TASK_HEADER: "bad id\n"}, app=app)
    trace_task(child_task, "t-2", (), {}, request={"id": "t-2"}, app=app)
    lines = [line for line in _lines(json_log) if line["logger"] == "tests.request_id"]
    assert [line["request_id"] for line in lines] == [None, None]


def test_json_format_from_the_environment():
    """``PREFLAB_LOG_FORMAT=json`` through Django's LOGGING: one JSON object per line on stderr."""
    code = (
        "import django, logging; django.setup();"
        "from labeling.request_id import request_id; request_id.set('env-1');"
        "logging.getLogger('tests.env').info('hello %s', 'there')"
    )
    env = {**os.environ, "PREFLAB_LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "labeling.settings"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert {k: line[k] for k in ("level", "logger", "message", "request_id")} == {
        "level": "INFO",
        "logger": "tests.env",
        "message": "hello there",
        "request_id": "env-1",
    }
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)


def test_an_unknown_log_format_is_refused():
    env = {**os.environ, "PREFLAB_LOG_FORMAT": "xml", "DJANGO_SETTINGS_MODULE": "labeling.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "PREFLAB_LOG_FORMAT must be 'text' or 'json'" in result.stderr
