"""API keys: made (the key shown once), revoked, and marked used.

A key is ``preflab_`` and 64 random hex characters (knox's format); only its SHA-512 digest and
its first characters (``token_key``, to recognize it by) are stored. Two kinds:

- named keys, made by their user on ``/account/keys/`` or with ``POST /api/v1/auth/keys/``, with an
  optional expiry; at most ``PREFLAB_API_KEYS_PER_USER`` unexpired ones (then: revoke one first);
- login keys, made by ``POST /api/v1/auth/token/`` (the API core's username-and-password door),
  which last ``PREFLAB_LOGIN_KEY_DAYS``; a user keeps at most ``PREFLAB_LOGIN_KEYS_PER_USER`` of
  them, and a new login revokes the oldest past that (and any expired ones), so logging in again
  and again never piles keys up, while scripts that log in side by side keep working.

Revoking deletes the row; the audit log records each creation and revocation, never the key.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeling.audit import audit_record
from labeling.errors import ApplicationError, Conflict
from labeling.models import ApiKey, User
from labeling.selectors.api_keys import api_keys_unexpired

NAME_MAX_LENGTH = ApiKey._meta.get_field("name").max_length or 100
MAX_EXPIRY_DAYS = 3650
LOGIN_KEY_NAME = "login"


def api_key_create(
    *, user: User, name: str, expires_in_days: float | None = None, kind: str = ApiKey.Kind.NAMED
) -> tuple[ApiKey, str]:
    """A new key for ``user``: the stored row and the key itself, which is never shown again.

    Raises ApplicationError naming ``name`` or ``expires_in_days``, or Conflict when the user
    already has ``PREFLAB_API_KEYS_PER_USER`` unexpired named keys.
    """
    name = (name or "").strip()
    if not name:
        raise ApplicationError("name: required (say what the key is for)", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise ApplicationError(f"name: at most {NAME_MAX_LENGTH} characters", field="name")
    if expires_in_days is not None and (
        isinstance(expires_in_days, bool) or not 0 < expires_in_days <= MAX_EXPIRY_DAYS
    ):
        raise ApplicationError(
            f"expires_in_days: must be between 1 and {MAX_EXPIRY_DAYS} (or left out: never)",
            field="expires_in_days",
        )
    if kind == ApiKey.Kind.NAMED:
        live = api_keys_unexpired(user=user).filter(kind=ApiKey.Kind.NAMED).count()
        if live >= settings.PREFLAB_API_KEYS_PER_USER:
            raise Conflict(
                f"You have {live} API keys, the most allowed: revoke one you no longer use first.",
                field="name",
            )
    expiry = timedelta(days=expires_in_days) if expires_in_days is not None else None
    api_key, raw = ApiKey.objects.create(user=user, expiry=expiry, name=name, kind=kind)
    audit_record(
        "api_key.create",
        target=api_key,
        actor=user,  # keys are made by their users (a login makes one before any key is sent)
        changes={"user": user.username, "name": name, "kind": kind, "expires_at": api_key.expiry},
    )
    return api_key, raw


def api_key_revoke(*, api_key: ApiKey, reason: str = "revoked", actor: User | None = None) -> None:
    """Revoke the key: it stops working at once (the row is deleted; the audit log keeps why).
    The actor is the request's user unless given."""
    audit_record(
        "api_key.revoke",
        target=api_key,
        actor=actor,
        object_repr=str(api_key),
        changes={"user": api_key.user.username, "name": api_key.name, "reason": reason},
    )
    api_key.delete()


def api_key_login(*, user: User) -> str:
    """A login key for ``POST /api/v1/auth/token/`` (see the module docstring for the cap).

    The user's row is locked while the old keys are counted, so concurrent logins keep the cap.
    """
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).exists()
        logins = user.api_keys.filter(kind=ApiKey.Kind.LOGIN).order_by("created", "id")
        now = timezone.now()
        for api_key in logins.filter(expiry__lte=now):
            api_key_revoke(api_key=api_key, reason="expired", actor=user)
        live = list(logins.filter(Q(expiry__isnull=True) | Q(expiry__gt=now)))
        for api_key in live[: max(0, len(live) - settings.PREFLAB_LOGIN_KEYS_PER_USER + 1)]:
            api_key_revoke(api_key=api_key, reason="replaced by a newer login key", actor=user)
        _, raw = api_key_create(
            user=user,
            name=LOGIN_KEY_NAME,
            expires_in_days=settings.PREFLAB_LOGIN_KEY_DAYS,
            kind=ApiKey.Kind.LOGIN,
        )
    return raw


def api_key_touch(*, api_key: ApiKey, now: datetime) -> None:
    """Record that the key was used, at most once per ``PREFLAB_API_KEY_TOUCH_SECONDS``: most
    requests write nothing, and of concurrent requests that find the time stale one UPDATE
    matches (the others match no row)."""
    stale = now - timedelta(seconds=settings.PREFLAB_API_KEY_TOUCH_SECONDS)
    if api_key.last_used_at is not None and api_key.last_used_at > stale:
        return
    ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=api_key.pk).update(
        last_used_at=now
    )
    api_key.last_used_at = now
