"""``503 Service Unavailable`` with ``Retry-After`` while the database cannot be reached.

When PostgreSQL restarts, fails over, or PgBouncer loses its servers, a request's query raises
Django's ``OperationalError`` (cannot connect, the connection was closed under it) or
``InterfaceError`` (the connection is already closed). That is not the client's fault and not a
bug: the same request will work in a few seconds. So instead of a 500 the client gets ``503``
with ``Retry-After`` (JSON under ``/api/``, a short page elsewhere), which well-behaved clients,
proxies and the rater page retry. Nothing was recorded by the failed request: Django rolls its
transaction back, and a judgment is idempotent, so sending it again records it once.

Recovery needs no one: Django closes a connection that raised (and, with ``CONN_HEALTH_CHECKS``
on, checks a kept connection before a request reuses it), so the next request opens a new one.

``DatabaseUnavailableMiddleware`` answers for errors raised in views (API and pages alike);
``labeling.views.errors.server_error`` calls ``database_unavailable_response`` for the same errors
raised in a middleware, outside any view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

#: Seconds a client is asked to wait: a PostgreSQL restart or a failover takes a few.
RETRY_AFTER_SECONDS = 5


def database_unavailable(exc: BaseException | None) -> bool:
    """True for the errors that mean "the database cannot be reached right now"."""
    return isinstance(exc, (OperationalError, InterfaceError))


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with ``Retry-After``: JSON under ``/api/``, a short page elsewhere (no detail of the error)."""
    message = "The database is unavailable for a moment. Nothing was saved; try again shortly."
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=503)
    else:
        response = HttpResponse(
            "<!doctype html><title>Unavailable</title>"
            f"<p>{message}</p><p>This page will work again in a few seconds.</p>",
            status=503,
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Turn a view's lost-database error into ``503`` + ``Retry-After`` instead of a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not database_unavailable(exception):
            return None
        logger.warning(
            "database unavailable, answering 503: %s: %s",
            type(exception).__name__,
            str(exception).strip().splitlines()[0] if str(exception).strip() else "",
        )
        return database_unavailable_response(request)
