"""The project's error handlers (``handler400`` ... ``handler500`` in ``labeling/urls.py``).

Under ``/api/`` an error is JSON, ``{"detail": ...}``, as DRF's own errors are, also for a route
that does not exist and for a server error; elsewhere Preflab's error pages (``templates/404.html``
...). Django calls these only with ``DEBUG`` off; with it on it shows its debug pages instead.
"""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from labeling.unavailable import database_unavailable, database_unavailable_response

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Says nothing of the error (it goes to the log, with its traceback). A lost database raised
    outside a view (in a middleware) answers 503 + Retry-After, as ``labeling.unavailable`` does."""
    if database_unavailable(sys.exc_info()[1]):
        return database_unavailable_response(request)
    if _is_api(request):
        return JsonResponse({"detail": "Server error: it has been logged."}, status=500)
    return defaults.server_error(request)
