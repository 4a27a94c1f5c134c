"""Domain errors, and how the API turns them into JSON: part of the shared kernel.

Every app may import this module (it is the one exception to the app dependency order, together
with ``labeling.permissions``), so it imports no app itself: only Django and DRF. A service
raises ``ApplicationError`` (or ``Conflict``) for anything a user caused; the API's exception
handler and the pages show its message, naming the field when there is one.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    """An error a user caused, with the HTTP status it maps to and an optional field."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status_code is not None:
            self.status_code = status_code


class Conflict(ApplicationError):
    """The request is valid but the current state refuses it (409)."""

    status_code = 409


class NotFound(ApplicationError):
    """Nothing the caller may see has this id (404): never says whether it exists for others."""

    status_code = 404


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error a client can cause comes back as JSON naming the problem (and field)."""
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
            body["errors"] = {exc.field: [exc.message]}
        return Response(body, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(errors)
    response = drf_exception_handler(exc, context)
    if (
        response is not None
        and isinstance(exc, exceptions.ValidationError)
        and isinstance(response.data, dict)
    ):
        first = next(iter(response.data.items()), None)
        if first is not None:
            field, messages = first
            message = messages[0] if isinstance(messages, list) and messages else messages
            response.data = {"detail": f"{field}: {message}", "field": field, "errors": response.data}
    return response
