"""Token authentication for the API (``Authorization: Token <key>``), as DRF's, one join cheaper.

Every rater request authenticates, so the token and its user are read with one hand-written join
(see labeling.rows) rather than a compiled ``select_related`` query. The rules are DRF's: an
unknown key or an inactive user is refused with 401 and the same messages.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from labeling import rows


@functools.cache
def _token_sql(vendor: str) -> str:
    user_model = get_user_model()
    token, user = rows.table(Token), rows.table(user_model)
    q = rows.quote
    return (
        f"SELECT {rows.select_list(Token, user_model)} FROM {token}"
        f" INNER JOIN {user} ON {user}.{q('id')} = {token}.{q('user_id')}"
        f" WHERE {token}.{q('key')} = %s"
    )


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        found = rows.fetch_one(_token_sql(connection.vendor), [key], (Token, get_user_model()))
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token, user = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token
