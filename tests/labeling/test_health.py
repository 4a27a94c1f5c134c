"""``/healthz`` and ``/readyz`` through the front door: answered before login, the host check and
the HTTPS redirect; ``/readyz`` names each check and the one that failed (503 with Retry-After)."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from labeling import health
from labeling.benchstats import free_port


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch):
    # The module remembers applied migrations and the last failure, per process.
    monkeypatch.setattr(health, "_migrations_applied", False)
    monkeypatch.setattr(health, "_last_failed", ())


def test_healthz_answers_without_the_database_or_an_account():
    # No ``db`` fixture: pytest-django fails any database access, so this also proves there is none.
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_health_routes_skip_host_check_https_redirect_and_login(settings, db):
    settings.ALLOWED_HOSTS = ["preflab.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    # A probe by address over plain HTTP, as load balancers send it.
    for path in ("/healthz", "/readyz"):
        response = client.get(path, HTTP_HOST="10.1.2.3:8000")
        assert response.status_code == 200, (path, response.content)
        assert response["Content-Type"] == "application/json"
    assert client.head("/healthz", HTTP_HOST="10.1.2.3").status_code == 200
    # Every other route still gets the host check.
    assert client.get("/rate/", HTTP_HOST="10.1.2.3").status_code == 400


def test_readyz_lists_each_check(db):
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "migrations"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["migrations"]["detail"] == "all applied"
    assert "Retry-After" not in response


def test_readyz_503_when_the_broker_port_is_closed(settings, db, caplog):
    settings.CELERY_BROKER_URL = f"redis://:secret@127.0.0.1:{free_port()}/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    client = Client()
    with caplog.at_level(logging.WARNING, logger="labeling.health"):
        first = client.get("/readyz")
        second = client.get("/readyz")
    for response in (first, second):
        assert response.status_code == 503
        assert response["Retry-After"] == str(health.RETRY_AFTER_SECONDS)
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["failed"] == ["broker"]
        assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]
        assert "refused" in body["checks"]["broker"]["detail"].lower()
        assert "secret" not in response.content.decode()
    # One line when the state changes, not one per probe; Django's request log stays quiet.
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in records] == ["labeling.health"]
    assert "broker" in records[0].getMessage()


def test_readyz_503_names_an_unapplied_migration(db):
    # The migration executor's plan: the newest migration of an app, which the code has and the
    # database has not recorded (as after deploying new code before running migrate).
    (app, name) = max(n for n in MigrationLoader(connection).graph.leaf_nodes() if n[0] == "model_runner")
    MigrationRecorder(connection).record_unapplied(app, name)
    assert health.unapplied_migrations() == [f"model_runner.{name}"]
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["migrations"]
    assert f"1 not applied (model_runner.{name})" in body["checks"]["migrations"]["detail"]
    assert "manage.py migrate" in body["checks"]["migrations"]["detail"]


def test_readyz_503_when_the_database_is_unreachable(monkeypatch, db):
    def refuse() -> str:
        raise OSError("connection refused")

    monkeypatch.setattr(health, "_database", refuse)
    body = Client().get("/readyz").json()
    assert body["failed"] == ["database", "migrations"]
    assert body["checks"]["migrations"]["detail"] == "not checked: the database is unreachable"


def test_only_get_and_head_are_answered(db):
    assert Client().post("/healthz").status_code == 404
