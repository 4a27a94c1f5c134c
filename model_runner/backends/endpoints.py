"""Where an ``openai`` generator may send requests, and which worker secret it may send.

An admin configures a generator's endpoint URL and the *name* of the worker environment variable
holding its API key. Unchecked, that would let an admin make a worker send any of its secrets
(the Django secret key, the database URL) as a bearer token to any address, or read internal
services through error messages. So, checked when a generator is saved and again when a worker
loads it:

- the endpoint URL is ``http`` or ``https`` with a host (no ``file://``, ``gopher://``, ...), and,
  when ``PREFLAB_ENDPOINT_HOSTS`` is set, its host is one of those (``*.example.com`` matches
  subdomains; an entry with ``:port`` matches that port only);
- the key variable's name starts with ``PREFLAB_API_KEY_ENV_PREFIX`` (default ``PREFLAB_KEY_``):
  only variables an operator named for this purpose can be sent.

Standard library and Django settings only (no torch): the web process checks on save.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings

_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class EndpointError(ValueError):
    """A generator's endpoint or key variable is not allowed; the message names the field."""


def _host_allowed(host: str, port: int | None, allowed: list[str]) -> bool:
    for entry in allowed:
        pattern, _, want_port = entry.strip().lower().partition(":")
        if want_port and str(port or "") != want_port:
            continue
        if pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def endpoint_url_check(url: str) -> str:
    """The endpoint's base URL, stripped; ``EndpointError`` unless it may be called."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"model_path: not a valid URL ({exc})") from exc
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise EndpointError(
            f"model_path: must be an http:// or https:// URL with a host (for example http://gpu-box:8000/v1), "
            f"got {url!r}"
        )
    if parts.username or parts.password:
        raise EndpointError(
            "model_path: must not carry a user or password; name a key variable in api_key_env"
        )
    allowed = list(getattr(settings, "PREFLAB_ENDPOINT_HOSTS", []))
    if allowed and not _host_allowed(parts.hostname.lower(), port, allowed):
        raise EndpointError(
            f"model_path: the host {parts.hostname!r} is not one of the allowed endpoint hosts "
            "(PREFLAB_ENDPOINT_HOSTS)"
        )
    return url


def api_key_env_check(name: str) -> str:
    """The key variable's name, stripped ('' for none); ``EndpointError`` unless it may be sent."""
    name = (name or "").strip()
    if not name:
        return ""
    prefix = str(getattr(settings, "PREFLAB_API_KEY_ENV_PREFIX", "PREFLAB_KEY_"))
    if not _ENV_NAME.match(name) or not name.startswith(prefix):
        raise EndpointError(
            f"api_key_env: must name an environment variable that starts with {prefix} "
            f"(upper case letters, digits and _), such as {prefix}OPENAI; got {name!r}"
        )
    return name
