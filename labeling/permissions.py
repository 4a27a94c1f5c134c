"""Role permissions for the API: part of the shared kernel (see ``labeling.errors``).

Every app may import this module, so it imports no app: a user's role is read from the request's
user object (``role``, ``is_superuser``), never from a model import.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request


def request_role(request: Request) -> str | None:
    """The caller's role (``rater``, ``reviewer``, ``researcher``, ``admin``), or None if anonymous."""
    user = request.user
    if not user or not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return "admin"
    return getattr(user, "role", None)


class IsAdminRole(permissions.BasePermission):
    message = "Only admins may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request_role(request) == "admin"


class IsResearcherOrAdmin(permissions.BasePermission):
    message = "Only researchers and admins may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request_role(request) in {"researcher", "admin"}
