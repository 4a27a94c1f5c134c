"""Request checks every route shares, before any view runs."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.html import escape

from labeling.audit import audit_request
from labeling.parsers import query_problem


class AuditContextMiddleware:
    """Serve each request inside ``labeling.audit.audit_request``: audit events recorded while it
    runs (services, signals) name its user and client address. The user is read when an event is
    recorded, so an API key authenticated later by DRF counts too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with audit_request(request):
            return self.get_response(request)


class RequestTextMiddleware:
    """Refuse control characters (other than tab and line breaks) in a query string, or in a
    page's form fields, with 400 naming the field: PostgreSQL cannot store NUL, SQLite would, and
    no text a person types needs the others. API bodies get the same check in their parsers
    (``labeling.parsers``), which DRF runs; ``/api/`` answers in JSON."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        api = request.path.startswith("/api/")
        problem = query_problem(request.GET)
        if problem is None and request.method == "POST" and not api:
            problem = query_problem(request.POST)
        if problem is None:
            return self.get_response(request)
        field, message = problem
        if api:
            return JsonResponse(
                {"detail": f"{field}: {message}", "field": field, "errors": {field: [message]}}, status=400
            )
        return HttpResponseBadRequest(
            f"<!doctype html><title>Bad request</title><p>{escape(field)}: {escape(message)}</p>"
            '<p>Go back, correct it and send it again, or <a href="/">start over</a>.</p>'
        )
