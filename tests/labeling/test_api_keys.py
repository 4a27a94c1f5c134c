"""API keys through HTTP: the API core's login contract, keys shown once and stored hashed, named
keys with expiry, revocation, the last-use time written at most once a minute, the caps."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.models import ApiKey, AuditEvent
from tests.factories import PASSWORD, RaterFactory, api_key_for

pytestmark = pytest.mark.django_db


def _login(api, username, password=PASSWORD):
    return api.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def _as(api, key):
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


def test_the_login_contract_is_unchanged(api, rater):
    """POST /api/v1/auth/token/ {username, password} -> {"token": ...}, used as "Token <key>"."""
    response = _login(api, rater.username)
    assert response.status_code == 200
    assert list(response.json()) == ["token"]
    assert response["Cache-Control"] == "no-store"
    token = response.json()["token"]
    assert token.startswith("preflab_") and len(token) == len("preflab_") + 64
    assert _as(api, token).get("/api/v1/queues/").status_code == 200
    # form fields work as before, and a wrong password is still 400
    assert (
        api.post("/api/v1/auth/token/", {"username": rater.username, "password": PASSWORD}).status_code == 200
    )
    assert _login(api, rater.username, "wrong").status_code == 400
    key = ApiKey.objects.get(user=rater, digest=hashlib.sha512(token.encode()).hexdigest())
    assert key.kind == ApiKey.Kind.LOGIN and key.name == "login" and key.expiry is not None


def test_a_key_is_shown_once_and_stored_only_as_its_digest(api, rater):
    client = Client()
    client.force_login(rater)
    made = client.post("/api/v1/auth/keys/", {"name": "nightly script", "expires_in_days": 30})
    assert made.status_code == 201, made.content
    body = made.json()
    token = body["token"]
    assert body["name"] == "nightly script" and body["prefix"] == token[:15]
    assert made["Cache-Control"] == "no-store"
    listed = client.get("/api/v1/auth/keys/").json()
    assert [k["name"] for k in listed] == ["nightly script"]
    assert "token" not in listed[0] and token not in client.get("/api/v1/auth/keys/").content.decode()
    row = ApiKey.objects.get(pk=body["id"])
    assert row.digest == hashlib.sha512(token.encode()).hexdigest()
    stored = [str(getattr(row, f.attname)) for f in ApiKey._meta.concrete_fields]
    assert not any(token in value for value in stored)
    assert _as(api, token).get("/api/v1/queues/").status_code == 200
    # nothing of the key reaches the audit log
    assert not any(token in str(e.changes) for e in AuditEvent.objects.all())


def test_a_revoked_key_is_refused_at_once_and_others_keys_are_out_of_reach(api, rater, rater2):
    token = api_key_for(rater, name="laptop")
    key = ApiKey.objects.get(user=rater)
    other = Client()
    other.force_login(rater2)
    assert other.delete(f"/api/v1/auth/keys/{key.pk}/").status_code == 404
    assert _as(api, token).delete(f"/api/v1/auth/keys/{key.pk}/").status_code == 204
    refused = api.get("/api/v1/queues/")
    assert refused.status_code == 401 and refused.json()["detail"] == "Invalid token."
    assert not ApiKey.objects.filter(pk=key.pk).exists()


def test_an_expired_key_is_refused(api, rater):
    token = api_key_for(rater, expires_in_days=1)
    assert _as(api, token).get("/api/v1/queues/").status_code == 200
    ApiKey.objects.filter(user=rater).update(expiry=timezone.now() - timedelta(seconds=1))
    refused = api.get("/api/v1/queues/")
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]


def test_bad_names_and_expiries_name_the_field(rater_api):
    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "k", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "k", "expires_in_days": 99999}, "expires_in_days"),
    ):
        response = rater_api.post("/api/v1/auth/keys/", body, format="json")
        assert response.status_code == 400 and response.json()["field"] == field, body


def test_last_use_is_written_at_most_once_a_minute(api, rater):
    token = api_key_for(rater)
    _as(api, token)

    def updates() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get("/api/v1/queues/").status_code == 200
        return sum(1 for q in queries.captured_queries if q["sql"].startswith("UPDATE"))

    assert updates() == 1
    first = ApiKey.objects.get(user=rater).last_used_at
    assert first is not None
    assert [updates() for _ in range(5)] == [0] * 5
    assert ApiKey.objects.get(user=rater).last_used_at == first
    ApiKey.objects.filter(user=rater).update(last_used_at=timezone.now() - timedelta(seconds=61))
    assert updates() == 1
    assert ApiKey.objects.get(user=rater).last_used_at > first


def test_logging_in_again_and_again_keeps_the_latest_login_keys(api, rater, settings):
    settings.PREFLAB_LOGIN_KEYS_PER_USER = 3
    tokens = [_login(api, rater.username).json()["token"] for _ in range(5)]
    assert ApiKey.objects.filter(user=rater, kind=ApiKey.Kind.LOGIN).count() == 3
    statuses = [_as(api, t).get("/api/v1/queues/").status_code for t in tokens]
    assert statuses == [401, 401, 200, 200, 200]
    replaced = AuditEvent.objects.filter(action="api_key.revoke", changes__reason__startswith="replaced")
    assert replaced.count() == 2
    # named keys are not touched by logins, and have their own cap
    settings.PREFLAB_API_KEYS_PER_USER = 2
    client = Client()
    client.force_login(rater)
    for name in ("a", "b"):
        assert client.post("/api/v1/auth/keys/", {"name": name}).status_code == 201
    refused = client.post("/api/v1/auth/keys/", {"name": "c"})
    assert refused.status_code == 409 and "revoke one" in refused.json()["detail"]
    _login(api, rater.username)
    assert ApiKey.objects.filter(user=rater, kind=ApiKey.Kind.NAMED).count() == 2


def test_an_inactive_users_keys_stop_working(api):
    user = RaterFactory()
    token = api_key_for(user)
    user.is_active = False
    user.save()
    response = _as(api, token).get("/api/v1/queues/")
    assert response.status_code == 401 and response.json()["detail"] == "User inactive or deleted."


def test_the_keys_page_shows_a_new_key_once_and_revokes(rater):
    client = Client()
    client.force_login(rater)
    page = client.get("/account/keys/")
    assert page.status_code == 200 and b"No keys yet" in page.content
    made = client.post("/account/keys/", {"name": "notebook", "expires_in_days": "30"})
    assert made.status_code == 200 and made["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(user=rater)
    html = made.content.decode()
    token = html.split('id="new-key" class="key" readonly value="')[1].split('"')[0]
    assert token.startswith("preflab_") and key.digest == hashlib.sha512(token.encode()).hexdigest()
    again = client.get("/account/keys/").content.decode()
    assert token not in again and key.token_key in again and "notebook" in again
    assert client.post("/account/keys/", {"name": ""}).status_code == 400
    revoked = client.post(f"/account/keys/{key.pk}/revoke/", follow=True)
    assert b"no longer works" in revoked.content and not ApiKey.objects.filter(pk=key.pk).exists()
    assert client.post("/account/keys/999999/revoke/").status_code == 404


def test_admins_revoke_anyones_key_in_the_django_admin(admin_user, rater):
    token = api_key_for(rater, name="leaked")
    key = ApiKey.objects.get(user=rater)
    client = Client()
    client.force_login(admin_user)
    listing = client.get("/admin/labeling/apikey/")
    assert (
        listing.status_code == 200 and b"leaked" in listing.content and token.encode() not in listing.content
    )
    assert client.get("/admin/labeling/apikey/add/").status_code == 403
    response = client.post(f"/admin/labeling/apikey/{key.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ApiKey.objects.filter(pk=key.pk).exists()
    event = AuditEvent.objects.get(action="api_key.revoke")
    assert event.actor_id == admin_user.pk and "in the admin" in event.changes["reason"]


def test_drf_tokens_become_hashed_keys_that_keep_working(api, rater):
    """Migration 0008: a plaintext DRF token (from before API keys) keeps working, stored hashed."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("labeling.migrations.0008_api_keys_audit_log")
    legacy = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE TABLE "authtoken_token" ("key" varchar(40), "user_id" bigint, "created" timestamp)'
        )
        cursor.execute(
            'INSERT INTO "authtoken_token" VALUES (%s, %s, %s)', [legacy, rater.pk, "2024-01-02 03:04:05"]
        )

    class Editor:  # what the migration uses of a schema editor (SQLite's needs no open transaction)
        def __init__(self) -> None:
            self.connection = connection

        def execute(self, sql: str) -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql)

    migration.drf_tokens_to_api_keys(apps, Editor())
    assert "authtoken_token" not in connection.introspection.table_names()
    key = ApiKey.objects.get(user=rater)
    assert key.digest == hashlib.sha512(legacy.encode()).hexdigest() and key.created.year == 2024
    assert _as(api, legacy).get("/api/v1/queues/").status_code == 200
