"""Safe defaults: debug off unless asked for; production servers and workers refuse to start
without a shared, strong secret key (and the web without its host names); ``check --deploy`` is
clean with the production variables that docs/operations.md lists; Django's four password
validators hold wherever a password is set."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ImproperlyConfigured, ValidationError

from labeling.demo import demo_logins
from labeling.models import User
from labeling.security import production_problems, refuse_unsafe_production
from tests.factories import PASSWORD

OPERATIONS = Path(settings.BASE_DIR) / "docs" / "operations.md"
STRONG_KEY = secrets.token_urlsafe(50)


def documented_production_env() -> dict[str, str]:
    """The variables in docs/operations.md's production block (after its ``production-env`` marker)."""
    text = OPERATIONS.read_text()
    block = re.search(r"<!-- production-env.*?-->\s*```sh\n(.*?)```", text, re.S)
    assert block, "docs/operations.md lost its production-env block"
    env = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", block.group(1), re.M))
    assert env["DJANGO_DEBUG"] == "0"
    return env


def _run(
    args: list[str], env: dict[str, str], tmp_path: Path, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    """A Preflab process with exactly this environment (plus PATH and a var folder of its own)."""
    base = {"PATH": os.environ["PATH"], "PREFLAB_VAR_DIR": str(tmp_path / "var"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        args,
        cwd=settings.BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _python(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        [sys.executable, "-c", code], {"DJANGO_SETTINGS_MODULE": "labeling.settings", **env}, tmp_path
    )


# -- defaults -------------------------------------------------------------------------------


def test_debug_is_off_and_no_host_is_allowed_without_variables(tmp_path):
    code = "from django.conf import settings; print(settings.DEBUG, settings.ALLOWED_HOSTS)"
    assert _python(code, {}, tmp_path).stdout.strip() == "False []"
    assert _python(code, {"DJANGO_DEBUG": "1"}, tmp_path).stdout.strip() == "True ['127.0.0.1', 'localhost']"


def test_manage_py_commands_run_on_a_fresh_machine_without_variables(tmp_path):
    result = _run([sys.executable, "manage.py", "check"], {}, tmp_path)
    assert result.returncode == 0, result.stderr


# -- refusal --------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["labeling.wsgi", "labeling.asgi"])
def test_a_production_web_server_refuses_to_start_without_key_and_hosts(tmp_path, module):
    result = _python(f"import {module}", {}, tmp_path)
    assert result.returncode != 0
    assert "refuses to start with DJANGO_DEBUG off" in result.stderr
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "DJANGO_ALLOWED_HOSTS is empty" in result.stderr


def test_a_weak_key_is_refused_and_a_complete_environment_starts(tmp_path):
    weak = _python(
        "import labeling.wsgi", {"DJANGO_SECRET_KEY": "secret", "DJANGO_ALLOWED_HOSTS": "x"}, tmp_path
    )
    assert weak.returncode != 0 and "DJANGO_SECRET_KEY is weak" in weak.stderr
    assert "DJANGO_ALLOWED_HOSTS" not in weak.stderr
    good = _python(
        "import labeling.wsgi", {"DJANGO_SECRET_KEY": STRONG_KEY, "DJANGO_ALLOWED_HOSTS": "x"}, tmp_path
    )
    assert good.returncode == 0, good.stderr
    debug = _python("import labeling.wsgi", {"DJANGO_DEBUG": "1"}, tmp_path)
    assert debug.returncode == 0, debug.stderr


@pytest.mark.timeout(120)
def test_a_production_celery_worker_refuses_to_start_without_a_key(tmp_path):
    celery = [sys.executable, "-m", "celery", "-A", "labeling", "worker", "-Q", "default", "--pool", "solo"]
    result = _run(celery, {}, tmp_path, timeout=90)
    assert result.returncode == 1
    assert "Celery worker refuses to start" in result.stderr
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "ALLOWED_HOSTS" not in result.stderr  # a worker serves no HTTP


def test_production_problems_name_what_to_set(settings):
    settings.DEBUG = False
    settings.PREFLAB_SECRET_KEY_FROM_ENV = False
    settings.ALLOWED_HOSTS = []
    assert [check_id for check_id, _ in production_problems()] == ["preflab.E001", "preflab.E003"]
    assert [check_id for check_id, _ in production_problems(web=False)] == ["preflab.E001"]
    settings.PREFLAB_SECRET_KEY_FROM_ENV = True
    for weak in ("short", "a" * 60, "django-insecure-" + secrets.token_urlsafe(50)):
        settings.SECRET_KEY = weak
        assert [check_id for check_id, _ in production_problems(web=False)] == ["preflab.E002"], weak
    settings.SECRET_KEY = STRONG_KEY
    settings.ALLOWED_HOSTS = ["preflab.example.org"]
    assert production_problems() == []
    refuse_unsafe_production("web server")
    settings.ALLOWED_HOSTS = []
    with pytest.raises(ImproperlyConfigured, match="DJANGO_ALLOWED_HOSTS=preflab.example.org"):
        refuse_unsafe_production("web server")
    settings.DEBUG = True
    assert production_problems() == []


# -- check --deploy -------------------------------------------------------------------------


def test_check_deploy_is_clean_with_the_documented_production_variables(tmp_path):
    env = documented_production_env()
    env["DJANGO_SECRET_KEY"] = STRONG_KEY  # the block says what to put there
    # Where this machine keeps things: the documented servers are not here, and check needs none.
    env.pop("DATABASE_URL")
    env["PREFLAB_EXPORT_ROOT"] = str(tmp_path / "exports")
    result = _run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_reports_a_missing_key_and_hosts_as_errors(tmp_path):
    result = _run([sys.executable, "manage.py", "check", "--deploy"], {}, tmp_path)
    assert result.returncode != 0
    for check_id in ("preflab.E001", "preflab.E003", "security.W004", "security.W008"):
        assert check_id in result.stderr, check_id


def test_production_settings_turn_on_hsts_ssl_and_the_proxy_header(tmp_path):
    env = {**documented_production_env(), "DJANGO_SECRET_KEY": STRONG_KEY}
    env.pop("DATABASE_URL")
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    printed = _python(code, env, tmp_path).stdout.strip()
    assert printed == "31536000 True True True ('HTTP_X_FORWARDED_PROTO', 'https') True True"


# -- passwords ------------------------------------------------------------------------------


def test_all_four_password_validators_are_on():
    names = {v["NAME"].rsplit(".", 1)[1] for v in settings.AUTH_PASSWORD_VALIDATORS}
    assert names == {
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("73920174615", "entirely numeric"),
        ("margaret-hamilton", "too similar to the username"),
        ("password123", "too common"),
        ("Ab1!x", "too short"),
    ],
)
def test_the_users_api_refuses_weak_passwords_naming_the_field(admin_api, password, message):
    body = {"username": "margaret-hamilton", "password": password, "role": "rater"}
    response = admin_api.post("/api/v1/users/", body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "password"
    assert message in response.json()["detail"]
    assert not User.objects.filter(username="margaret-hamilton").exists()


def _password_problems(password: str, user: User) -> list[str]:
    """What Django's validators say against ``password`` for ``user`` (nothing: it passes)."""
    try:
        validate_password(password, user)
    except ValidationError as exc:
        return list(exc.messages)
    return []


def test_the_test_and_demo_passwords_pass_the_validators(settings, tmp_path):
    assert _password_problems(PASSWORD, User(username="rater-one", role="rater")) == []
    settings.VAR_DIR = tmp_path
    logins = demo_logins()
    assert set(logins) == {"admin", "researcher", "rater1", "rater2"}
    for username, password in logins.items():
        assert _password_problems(password, User(username=username)) == []
