"""API-key authentication (``Authorization: Token <key>``), in one hand-written statement.

Every rater request authenticates, so the key (``labeling.ApiKey``: knox's token model, stored as
the SHA-512 digest of the key) and its user are read with one join by digest
(``labeling.sql.statements.api_key_with_user``) rather than knox's own authentication class, which
reads by prefix and then every other key of the user on each request. The key's last use is
written at most once a minute (``services.api_keys.api_key_touch``), not once per request.

Refusals are 401 with a reason: an unknown or revoked key, an expired key, an inactive user.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from knox.crypto import hash_token
from rest_framework import authentication, exceptions

from labeling.models import ApiKey
from labeling.sql import statements


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's header parsing (``Token <key>``), knox's digest, one statement."""

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiKey]:
        found = statements.api_key_with_user.instances(digest=hash_token(key))
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        api_key, user = found
        now = timezone.now()
        if api_key.expiry is not None and api_key.expiry <= now:
            raise exceptions.AuthenticationFailed(_("API key expired: make a new one."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        api_key.user = user
        # Imported here: DRF imports this module while importing its views, which the services need.
        from labeling.services.api_keys import api_key_touch

        api_key_touch(api_key=api_key, now=now)
        return user, api_key
