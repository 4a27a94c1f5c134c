"""Your account: the login page (throttled before the password is checked) and your API keys
(``/account/keys/``), which call the same services as ``/api/v1/auth/keys/``."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from labeling.errors import ApplicationError, NotFound
from labeling.models import User
from labeling.selectors.api_keys import api_key_get_for_user, api_key_list_for_user
from labeling.services.api_keys import api_key_create, api_key_revoke
from labeling.throttles import login_wait, wait_message

#: The page's expiry choices, in days ("" = never).
EXPIRY_CHOICES = [("", "Never"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year")]


class LoginView(auth_views.LoginView):
    """Django's login page behind the login throttle (``labeling.throttles``); a lockout is
    answered by axes' middleware with ``lockout_response``."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = login_wait(request, request.POST.get("username", ""))
        if wait is None:
            return super().post(request, *args, **kwargs)
        refusal = wait_message(wait, "Too many login attempts")
        context = self.get_context_data(form=self.get_form_class()(request), refusal=refusal)
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(math.ceil(wait))
        return response


@login_required
@require_http_methods(["GET", "POST"])
def account_keys(request: HttpRequest) -> HttpResponse:
    """List your keys; make one (its key shown in this answer only); revoke one."""
    user: User = request.user  # type: ignore[assignment]
    created = error = None
    values = {"name": "", "expires_in_days": ""}
    if request.method == "POST":
        values = {k: request.POST.get(k, "").strip() for k in values}
        try:
            days = values["expires_in_days"]
            if days and not days.isdigit():
                raise ApplicationError(
                    "expires_in_days: choose one of the offered times", field="expires_in_days"
                )
            api_key, raw = api_key_create(
                user=user, name=values["name"], expires_in_days=int(days) if days else None
            )
        except ApplicationError as exc:
            error = exc.message
        else:
            created = {"key": api_key, "token": raw}
            values = {"name": "", "expires_in_days": ""}
    response = render(
        request,
        "labeling/account_keys.html",
        {
            "keys": api_key_list_for_user(user=user),
            "created": created,
            "error": error,
            "values": values,
            "expiry_choices": EXPIRY_CHOICES,
            "now": timezone.now(),
            "login_days": settings.PREFLAB_LOGIN_KEY_DAYS,
            "login_keys": settings.PREFLAB_LOGIN_KEYS_PER_USER,
        },
        status=400 if error else 200,
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def account_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        api_key = api_key_get_for_user(user=request.user, key_id=key_id)  # type: ignore[arg-type]
    except NotFound:
        raise Http404("No such API key.") from None
    api_key_revoke(api_key=api_key)
    messages.success(request, f"Revoked the key {api_key.name!r} ({api_key.token_key}…): it no longer works.")
    return redirect("account-keys")
