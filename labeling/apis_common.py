"""Shared API pieces: role permissions and the error shape every endpoint uses."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, permissions
from rest_framework.request import Request
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
    status_code = 409


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


def _role(request: Request) -> str | None:
    user = request.user
    if not user or not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return "admin"
    return getattr(user, "role", None)


class IsAdminRole(permissions.BasePermission):
    message = "Only admins may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return _role(request) == "admin"


class IsResearcherOrAdmin(permissions.BasePermission):
    message = "Only researchers and admins may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return _role(request) in {"researcher", "admin"}
