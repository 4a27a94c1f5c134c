"""API keys as their user sees them: never the key itself, which is shown once when made."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from labeling.errors import NotFound
from labeling.models import ApiKey, User
from labeling.sql.hydrate import is_bigint


def api_key_list_for_user(*, user: User) -> QuerySet[ApiKey]:
    """The user's keys, newest first (expired ones too, until revoked)."""
    return ApiKey.objects.filter(user=user).order_by("-created", "-id")


def api_key_get_for_user(*, user: User, key_id: Any) -> ApiKey:
    """One of the user's own keys; NotFound (404) for anyone else's or an unknown id."""
    try:
        pk = int(key_id)
        if not is_bigint(pk):
            raise ValueError(pk)
        return ApiKey.objects.select_related("user").get(pk=pk, user=user)
    except (ApiKey.DoesNotExist, TypeError, ValueError):
        raise NotFound("No such API key.") from None


def api_keys_unexpired(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()), user=user)
