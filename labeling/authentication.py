"""Token authentication for the API (``Authorization: Token <key>``), as DRF's, one join cheaper.

Every rater request authenticates, so the token and its user are read with one hand-written join
(``labeling.sql.statements.token_with_user``) rather than a compiled ``select_related`` query. The rules are DRF's: an
unknown key or an inactive user is refused with 401 and the same messages.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from labeling.sql import statements


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        found = statements.token_with_user.instances(key=key)
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token, user = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token
