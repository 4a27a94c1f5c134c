"""How fast a client may ask, and what a locked-out login is told.

Throttles are token buckets kept in the cache, which all web processes share (``CACHES``, from
``PREFLAB_CACHE_URL``): a bucket holds ``burst`` tokens and refills at ``rate``; each request takes
one, and a request that finds none is answered 429 with ``Retry-After``. Two requests of one
client racing in two processes may both take the last token: the rate holds within a request or
two, which is what a throttle is for.

- ``POST /api/v1/queues/{id}/next/`` and the judging page's next item, per user:
  ``PREFLAB_NEXT_RATE`` (5/s) with bursts of ``PREFLAB_NEXT_BURST`` (20). A fast human never gets
  there; a script hammering the queue does. ``bench_queue`` raises it for its own server.
- Login attempts (the login page and ``POST /api/v1/auth/token/``), per client address
  (``PREFLAB_LOGIN_RATE_ADDRESS``, 30/min) and per account named (``PREFLAB_LOGIN_RATE_ACCOUNT``,
  10/min), counted before the password is checked.

Lockout is django-axes' (settings ``AXES_*``): ``AXES_FAILURE_LIMIT`` failed logins for one
username from one address lock that pair out for the cool-off; ``lockout_response`` says so, as
JSON under ``/api/`` and on the login page elsewhere.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from labeling.audit import client_address

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_rate(rate: str) -> tuple[float, int]:
    """``"5/s"``, ``"30/min"``, ``"100/hour"`` -> (requests per second, requests per period)."""
    count, _, period = rate.partition("/")
    try:
        n = int(count)
        seconds = _PERIODS[period.strip()[:1].lower()]
    except (ValueError, KeyError):
        raise ValueError(f"bad rate {rate!r}: write it as N/s, N/min, N/hour or N/day") from None
    if n <= 0:
        raise ValueError(f"bad rate {rate!r}: N must be positive")
    return n / seconds, n


def bucket_take(key: str, *, per_second: float, burst: int) -> float | None:
    """Take a token from the bucket ``key``: None when there was one, else the seconds to wait."""
    now = time.time()
    state = cache.get(key)
    tokens = float(burst) if state is None else min(burst, state[0] + (now - state[1]) * per_second)
    if tokens < 1:
        return (1 - tokens) / per_second
    cache.set(key, (tokens - 1, now), timeout=math.ceil(burst / per_second) + 1)
    return None


def next_wait(user: Any) -> float | None:
    """Seconds this user must wait before asking for the next item, or None."""
    per_second, _ = parse_rate(settings.PREFLAB_NEXT_RATE)
    return bucket_take(f"throttle:next:{user.pk}", per_second=per_second, burst=settings.PREFLAB_NEXT_BURST)


def login_wait(request: HttpRequest | Request, username: str) -> float | None:
    """Seconds before this address may try to log in again (or try this account), or None."""
    per_second, burst = parse_rate(settings.PREFLAB_LOGIN_RATE_ADDRESS)
    wait = bucket_take(
        f"throttle:login-address:{client_address(request)}", per_second=per_second, burst=burst
    )
    if wait is None and username:
        account = hashlib.sha256(username.strip().lower().encode()).hexdigest()
        per_second, burst = parse_rate(settings.PREFLAB_LOGIN_RATE_ACCOUNT)
        wait = bucket_take(f"throttle:login-account:{account}", per_second=per_second, burst=burst)
    return wait


def wait_message(wait: float, what: str) -> str:
    seconds = max(1, math.ceil(wait))
    return f"{what}: wait {seconds} second{'s' if seconds != 1 else ''} and try again."


class _BucketThrottle(BaseThrottle):
    _wait: float | None = None

    def wait(self) -> float | None:
        return self._wait


class NextRateThrottle(_BucketThrottle):
    """``PREFLAB_NEXT_RATE`` per user on ``POST queues/{id}/next/``."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if not request.user.is_authenticated:
            return True  # refused by the permission check anyway
        self._wait = next_wait(request.user)
        return self._wait is None


class LoginRateThrottle(_BucketThrottle):
    """Login attempts per client address and per account named (``POST auth/token/``)."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method != "POST":
            return True
        data = request.data
        username = data.get("username", "") if hasattr(data, "get") else ""
        self._wait = login_wait(request, username if isinstance(username, str) else "")
        return self._wait is None


def lockout_message() -> str:
    minutes = settings.AXES_COOLOFF_TIME * 60
    return (
        f"Too many failed logins for this account from your address: it is locked for {minutes:g} "
        "minutes. Try again later, or ask an admin to unlock it."
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """axes' ``AXES_LOCKOUT_CALLABLE``: 429 with the reason, as JSON for the API, else the login page."""
    message = lockout_message()
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message, "code": "locked_out"}, status=429)
    else:
        response = TemplateResponse(
            request,
            "registration/login.html",
            {"form": AuthenticationForm(request), "refusal": message},
            status=429,
        )
        response.render()
    response["Retry-After"] = str(math.ceil(settings.AXES_COOLOFF_TIME * 3600))
    return response
