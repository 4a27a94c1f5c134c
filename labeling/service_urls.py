"""How the service URLs and switches in the environment become Django settings (``DATABASE_URL``,
``PREFLAB_CACHE_URL``, on/off variables). Read by ``labeling.settings``; imports no app."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url


def var_dir() -> Path:
    """``PREFLAB_VAR_DIR`` (default: ``var/`` in the checkout): files of this machine."""
    return Path(os.environ.get("PREFLAB_VAR_DIR", Path(__file__).resolve().parent.parent / "var")).resolve()


def env_bool(name: str, default: bool) -> bool:
    """An on/off environment variable: 1, true, yes or on (any case) mean on."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _transaction_pooler() -> bool:
    """Behind a pooler in transaction mode (PgBouncer, DATABASE_TRANSACTION_POOLER=1), consecutive
    transactions of one connection may run on different server connections: nothing may outlive a
    transaction on the server, so no prepared statements and no server-side cursors
    (``.iterator()`` then fetches client-side)."""
    return env_bool("DATABASE_TRANSACTION_POOLER", False)


def _pg_prepared_statements() -> dict[str, Any]:
    """Server-side binding with prepared statements: the hot claim/submit queries are planned
    once per connection. Off behind a transaction-mode pooler (DATABASE_TRANSACTION_POOLER=1,
    or DATABASE_PREPARED_STATEMENTS=0 alone)."""
    if _transaction_pooler() or not env_bool("DATABASE_PREPARED_STATEMENTS", True):
        return {}
    return {"server_side_binding": True, "prepare_threshold": 2}


def database_from_url(url: str) -> dict[str, Any]:
    """``DATABASE_URL`` as dj-database-url parses it (``postgres://user:pass@host:port/name?opts``,
    ``sqlite:////absolute/path``), plus what Preflab needs of each engine. Only PostgreSQL and
    SQLite are supported: the claim's locking is written for those two."""
    db: dict[str, Any] = dict(dj_database_url.parse(url))
    options = db.get("OPTIONS", {})
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE takes the write lock when a transaction begins, which serializes claims on
        # SQLite (where SELECT ... FOR UPDATE does not exist).
        db["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30, **options}
        # A file, not shared-cache memory: concurrency tests open one connection per thread, and
        # shared-cache SQLite fails fast on locks instead of waiting its timeout.
        db["TEST"] = {"NAME": str(var_dir() / f"test-preflab-{os.getpid()}.sqlite3")}
    elif db["ENGINE"] == "django.db.backends.postgresql":
        db["CONN_MAX_AGE"] = int(os.environ.get("DATABASE_CONN_MAX_AGE", "60"))
        # A kept connection is checked before a request reuses it, so after a PostgreSQL restart the
        # first request of each process reconnects instead of failing (labeling/unavailable.py).
        db["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_CONN_HEALTH_CHECKS", True)
        db["OPTIONS"] = {**_pg_prepared_statements(), **options}
        db["DISABLE_SERVER_SIDE_CURSORS"] = _transaction_pooler()
    else:
        raise ValueError(
            f"DATABASE_URL: unsupported database {db['ENGINE']!r} (use postgres:// or sqlite://)"
        )
    return db


def cache_from_url(url: str) -> dict[str, Any]:
    """``PREFLAB_CACHE_URL``: ``redis://host:6379/1`` (several machines), ``file:///path`` (one
    machine: shared by its processes), or ``locmem://`` (one process only: tests)."""
    if url.startswith(("redis://", "rediss://")):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    if url.startswith("file://"):
        return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": url[7:]}
    if url.startswith("locmem://"):
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": url[9:]}
    raise ValueError(f"PREFLAB_CACHE_URL: unsupported cache {url!r} (use redis://, file:/// or locmem://)")
