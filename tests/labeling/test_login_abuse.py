"""Abuse through HTTP: lockout after repeated failed logins on the page and the token endpoint,
with an admin unlock; login attempts throttled per address and per account; next/ per user."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from labeling.models import AuditEvent
from tests.factories import PASSWORD, QueueFactory, QueueItemFactory, api_key_for

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
TOKEN = "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = 0.25  # hours: 15 minutes


def _page_login(client, username, password):
    return client.post(LOGIN, {"username": username, "password": password})


def _api_login(api, username, password):
    return api.post(TOKEN, {"username": username, "password": password}, format="json")


def test_the_login_page_locks_out_after_repeated_failures_until_an_admin_unlocks(rater):
    client = Client()
    assert [_page_login(client, rater.username, "wrong").status_code for _ in range(2)] == [200, 200]
    locked = _page_login(client, rater.username, "wrong")
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content and b"ask an admin to unlock it" in locked.content
    assert locked["Retry-After"] == "900"
    # the right password is refused while locked
    assert _page_login(client, rater.username, PASSWORD).status_code == 429
    # the same username from another address is not locked (the pair is)
    other = Client(REMOTE_ADDR="10.9.8.7")
    assert _page_login(other, rater.username, PASSWORD).status_code == 302
    call_command("axes_reset_username", rater.username)
    assert _page_login(client, rater.username, PASSWORD).status_code == 302
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions.count("auth.login_failed") == 2 and "auth.lockout" in actions and "auth.unlock" in actions


def test_the_token_endpoint_locks_out_with_a_clear_json_answer(api, rater):
    assert [_api_login(api, rater.username, "wrong").status_code for _ in range(2)] == [400, 400]
    locked = _api_login(api, rater.username, "wrong")
    assert locked.status_code == 429
    body = locked.json()
    assert body["code"] == "locked_out" and "ask an admin to unlock it" in body["detail"]
    refused = _api_login(api, rater.username, PASSWORD)
    assert refused.status_code == 429 and "token" not in refused.json()
    call_command("axes_reset")
    assert _api_login(api, rater.username, PASSWORD).status_code == 200


def test_an_admin_unlocks_in_the_django_admin(api, rater, admin_user):
    from axes.models import AccessAttempt

    for _ in range(3):
        _api_login(api, rater.username, "wrong")
    attempt = AccessAttempt.objects.get(username=rater.username)
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and rater.username.encode() in page.content
    assert admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"}).status_code == 302
    assert _api_login(api, rater.username, PASSWORD).status_code == 200
    unlock = AuditEvent.objects.get(action="auth.unlock")
    assert unlock.actor_id == admin_user.pk and unlock.changes["username"] == rater.username


def test_a_success_clears_earlier_failures(api, rater):
    for _ in range(2):
        _api_login(api, rater.username, "wrong")
    assert _api_login(api, rater.username, PASSWORD).status_code == 200
    assert [_api_login(api, rater.username, "wrong").status_code for _ in range(2)] == [400, 400]


def test_login_attempts_are_throttled_per_address(api, rater, settings):
    settings.PREFLAB_LOGIN_RATE_ADDRESS = "3/min"
    statuses = [_api_login(api, f"nobody{i}", "x").status_code for i in range(4)]
    assert statuses == [400, 400, 400, 429]
    refused = _api_login(api, rater.username, PASSWORD)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    # the login page shares the bucket of the address
    page = _page_login(Client(), rater.username, PASSWORD)
    assert page.status_code == 429 and b"Too many login attempts" in page.content
    # another address is not throttled
    elsewhere = Client(REMOTE_ADDR="10.1.2.3")
    assert _page_login(elsewhere, rater.username, PASSWORD).status_code == 302


def test_login_attempts_are_throttled_per_account_across_addresses(rater, settings):
    settings.PREFLAB_LOGIN_RATE_ACCOUNT = "2/min"
    statuses = [
        _page_login(Client(REMOTE_ADDR=f"10.0.0.{i}"), rater.username.upper(), "wrong").status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_next_is_throttled_per_user(api, rater, rater2, settings):
    settings.PREFLAB_NEXT_RATE = "1/min"
    settings.PREFLAB_NEXT_BURST = 2
    queue = QueueFactory(members=[rater, rater2], max_open_leases=5)
    for _ in range(4):
        QueueItemFactory(queue=queue)
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_key_for(rater)}")
    statuses = [
        api.post(f"/api/v1/queues/{queue.pk}/next/", {"fresh": True}, format="json").status_code
        for _ in range(3)
    ]
    assert statuses == [201, 201, 429]
    refused = api.post(f"/api/v1/queues/{queue.pk}/next/")
    assert "throttled" in refused.json()["detail"] and int(refused["Retry-After"]) > 1
    # another rater has a bucket of their own; the judging page shares the rater's
    page = Client()
    page.force_login(rater2)
    assert page.get(f"/rate/{queue.pk}/").status_code == 302
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_key_for(rater2)}")
    assert api.post(f"/api/v1/queues/{queue.pk}/next/", {"fresh": True}, format="json").status_code == 201
    refused_page = page.get(f"/rate/{queue.pk}/", follow=True)
    assert b"You are asking for items very fast" in refused_page.content


def test_the_cache_comes_from_the_environment():
    from labeling.service_urls import cache_from_url

    assert cache_from_url("redis://cache:6379/1") == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://cache:6379/1",
    }
    assert cache_from_url("file:///srv/preflab/cache")["LOCATION"] == "/srv/preflab/cache"
    assert cache_from_url("locmem://")["BACKEND"].endswith("LocMemCache")
    with pytest.raises(ValueError, match="PREFLAB_CACHE_URL"):
        cache_from_url("memcached://x")
