"""DATABASE_URL, as parsed by dj-database-url plus Preflab's per-engine settings."""

from __future__ import annotations

import pytest

from labeling.service_urls import database_from_url


def test_sqlite_file_serializes_writers():
    db = database_from_url("sqlite:////srv/preflab/db.sqlite3")
    assert db["ENGINE"] == "django.db.backends.sqlite3" and db["NAME"] == "/srv/preflab/db.sqlite3"
    assert db["OPTIONS"] == {"transaction_mode": "IMMEDIATE", "timeout": 30}
    assert db["TEST"]["NAME"].endswith(".sqlite3")


@pytest.fixture(autouse=True)
def _no_pooler_settings(monkeypatch):
    """CI runs the suite behind PgBouncer with these set: each test says what it needs."""
    monkeypatch.delenv("DATABASE_TRANSACTION_POOLER", raising=False)
    monkeypatch.delenv("DATABASE_PREPARED_STATEMENTS", raising=False)


def test_postgres_keeps_query_options_and_decodes_the_password(monkeypatch):
    monkeypatch.setenv("DATABASE_CONN_MAX_AGE", "120")
    db = database_from_url("postgres://preflab:p%40ss@db.internal:5433/preflab?sslmode=require")
    assert (db["USER"], db["PASSWORD"], db["HOST"], str(db["PORT"]), db["NAME"]) == (
        "preflab",
        "p@ss",
        "db.internal",
        "5433",
        "preflab",
    )
    assert db["CONN_MAX_AGE"] == 120
    assert db["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 2, "sslmode": "require"}


def test_prepared_statements_can_be_turned_off_for_pgbouncer(monkeypatch):
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "0")
    db = database_from_url("postgresql://u@h/d")
    assert db["OPTIONS"] == {} and db["DISABLE_SERVER_SIDE_CURSORS"] is False


def test_behind_a_transaction_pooler_nothing_outlives_a_transaction(monkeypatch):
    monkeypatch.setenv("DATABASE_TRANSACTION_POOLER", "1")
    db = database_from_url("postgresql://u@h:6432/d")
    assert db["OPTIONS"] == {} and db["DISABLE_SERVER_SIDE_CURSORS"] is True


@pytest.mark.parametrize("url", ["mysql://u@h/d", "oracle://u@h/d"])
def test_other_databases_are_refused_by_name(url):
    with pytest.raises(ValueError, match="use postgres:// or sqlite://"):
        database_from_url(url)
