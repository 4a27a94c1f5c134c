"""What a production process refuses to start without.

With ``DJANGO_DEBUG`` off (the default), a web server (``labeling.wsgi`` / ``labeling.asgi``:
gunicorn, uwsgi, uvicorn) and a Celery worker (``labeling.celery``) refuse to start without a
shared, strong ``DJANGO_SECRET_KEY`` and, for the web, a non-empty ``DJANGO_ALLOWED_HOSTS``; the
message lists what to set. ``manage.py check --deploy`` reports the same problems as errors.

Settings themselves never refuse: the test suite and every ``manage.py`` command import them, and
must keep working on a fresh machine without any variable (the secret key then comes from the
per-machine file ``var/secret_key``, which is fine for one machine and wrong for several).
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

# Django's own measure of a weak key (security.W009), kept here as an error.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
GENERATE_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"


def production_problems(*, web: bool = True) -> list[tuple[str, str]]:
    """What this process lacks to run in production, as (check id, sentence naming what to set);
    nothing with ``DEBUG`` on. ``web=False`` (a worker) skips the web-only ``ALLOWED_HOSTS``."""
    if settings.DEBUG:
        return []
    problems = []
    key = settings.SECRET_KEY
    if not getattr(settings, "PREFLAB_SECRET_KEY_FROM_ENV", False):
        problems.append(
            (
                "preflab.E001",
                "DJANGO_SECRET_KEY is not set. Without it each machine makes its own key "
                "(var/secret_key), so web hosts and workers would disagree on sessions, signed links "
                f"and the rater pseudonyms in exports. Set one long random value everywhere: {GENERATE_KEY}",
            )
        )
    elif (
        len(key) < SECRET_KEY_MIN_LENGTH
        or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or key.startswith("django-insecure-")
    ):
        problems.append(
            (
                "preflab.E002",
                f"DJANGO_SECRET_KEY is weak: it needs at least {SECRET_KEY_MIN_LENGTH} characters, "
                f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} of them different, and no 'django-insecure-' prefix. "
                f"Generate one: {GENERATE_KEY}",
            )
        )
    if web and not settings.ALLOWED_HOSTS:
        problems.append(
            (
                "preflab.E003",
                "DJANGO_ALLOWED_HOSTS is empty: set the host names the site answers to, "
                "comma-separated (e.g. DJANGO_ALLOWED_HOSTS=preflab.example.org).",
            )
        )
    return problems


def refusal_message(process: str, problems: list[tuple[str, str]]) -> str:
    lines = [f"Preflab's {process} refuses to start with DJANGO_DEBUG off (production):"]
    lines += [f"  - {sentence}" for _, sentence in problems]
    lines.append(
        "Set these variables (docs/operations.md lists them all), or DJANGO_DEBUG=1 on a development machine."
    )
    return "\n".join(lines)


def refuse_unsafe_production(process: str, *, web: bool = True) -> None:
    """Raise ``ImproperlyConfigured`` listing what to set, when production settings lack it."""
    problems = production_problems(web=web)
    if problems:
        raise ImproperlyConfigured(refusal_message(process, problems))


@register(Tags.security, deploy=True)
def check_production_settings(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """``manage.py check --deploy``: the same problems a server refuses to start with."""
    return [Error(sentence, id=check_id) for check_id, sentence in production_problems()]
