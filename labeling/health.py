"""Health checks: ``/healthz`` (the process is up) and ``/readyz`` (it can serve), and the checks
``manage.py worker_check`` shares with them.

The two routes are answered by ``HealthMiddleware``, first in ``MIDDLEWARE``: before the host check,
the HTTPS redirect, sessions, login, the throttles and axes, so a load balancer or an orchestrator
can probe a process by its address over plain HTTP without an account. Neither route writes
anything. A failed readiness check is logged once when the state changes, not on every probe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

#: Seconds the broker gets to answer a readiness probe or ``worker_check``.
BROKER_TIMEOUT_SECONDS = 2.0
#: What ``Retry-After`` says when ``/readyz`` answers 503.
RETRY_AFTER_SECONDS = 10

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, what it saw (or why it failed), and how long it took."""

    name: str
    ok: bool
    detail: str
    ms: float


def _timed(name: str, check: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail, ok = check(), True
    except Exception as exc:  # a health check reports every failure as the answer, whatever it is
        detail, ok = f"{type(exc).__name__}: {exc}".strip(), False
    return CheckResult(name, ok, detail, round((time.perf_counter() - started) * 1000, 1))


def _database() -> str:
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return f"{connection.vendor} reachable"


def broker_url_safe(url: str) -> str:
    """The broker URL without its password (for messages)."""
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def _broker() -> str:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    with Connection(
        url,
        connect_timeout=BROKER_TIMEOUT_SECONDS,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    ) as conn:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=int(BROKER_TIMEOUT_SECONDS)
        )
    return f"{broker_url_safe(url)} reachable"


# Once every migration is applied it stays so for the life of the process (new migrations come
# with new code, which means a new process), so the plan is worked out until it is empty, then no more.
_migrations_applied = False


def unapplied_migrations() -> list[str]:
    """``app.name`` of every migration the code has and the database has not applied, in order."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in plan if not backwards]


def _migrations() -> str:
    global _migrations_applied
    if _migrations_applied:
        return "all applied"
    missing = unapplied_migrations()
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise RuntimeError(f"{len(missing)} not applied ({shown}): run manage.py migrate")
    _migrations_applied = True
    return "all applied"


def check_database() -> CheckResult:
    return _timed("database", _database)


def check_broker() -> CheckResult:
    return _timed("broker", _broker)


def check_migrations() -> CheckResult:
    return _timed("migrations", _migrations)


def readiness() -> list[CheckResult]:
    """Database, broker, migrations; migrations only when the database answered."""
    database = check_database()
    results = [database, check_broker()]
    if database.ok:
        results.append(check_migrations())
    else:
        results.append(CheckResult("migrations", False, "not checked: the database is unreachable", 0.0))
    return results


_last_failed: tuple[str, ...] = ()


def _readyz() -> HttpResponse:
    global _last_failed
    results = readiness()
    failed = tuple(r.name for r in results if not r.ok)
    if failed != _last_failed:
        if failed:
            details = "; ".join(f"{r.name}: {r.detail}" for r in results if not r.ok)
            logger.warning("not ready: %s", details)
        else:
            logger.info("ready again")
        _last_failed = failed
    body: dict[str, Any] = {
        "status": "unavailable" if failed else "ok",
        "checks": {r.name: {k: v for k, v in asdict(r).items() if k != "name"} for r in results},
    }
    if failed:
        body["failed"] = list(failed)
    response = JsonResponse(body, status=503 if failed else 200)
    if failed:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class HealthMiddleware:
    """Answer ``GET``/``HEAD`` ``/healthz`` and ``/readyz`` before any other middleware runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in HEALTH_PATHS or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        if request.path_info == "/healthz":
            response: HttpResponse = JsonResponse({"status": "ok"})
        else:
            response = _readyz()
        response["Cache-Control"] = "no-store"
        # Django's request logger would write a line per failed probe; _readyz logs state changes.
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response
