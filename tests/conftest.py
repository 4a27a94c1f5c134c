from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import AdminFactory, RaterFactory, ResearcherFactory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres`` check PostgreSQL-only SQL: they are skipped, visibly, on SQLite
    (the default). CI's PostgreSQL run (DATABASE_URL=postgres://...) runs them."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="PostgreSQL only (set DATABASE_URL=postgres://... to run it)")
    for item in items:
        if item.get_closest_marker("postgres") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _eager_celery():
    """Tasks run in-process unless a test starts a real worker (marker ``worker``).

    Tasks are enqueued with ``transaction.on_commit``: inside a test transaction use
    ``django_capture_on_commit_callbacks(execute=True)`` to run them.
    """
    from labeling.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _isolated_var(settings, tmp_path):
    """Exports and other files written by tests go to a temporary folder."""
    settings.PREFLAB_EXPORT_ROOT = tmp_path / "exports"
    # The default hasher costs ~0.2 s per factory user; tests need no real hashing strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests move lease expiry by hand and expect the very next claim to see it.
    settings.PREFLAB_LEASE_SCAN_SECONDS = 0
    # A cache of the test's own: throttle buckets and lockout counters start empty in every test.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}
    }


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def _client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin_user(db):
    return AdminFactory(username="admin-user")


@pytest.fixture
def researcher(db):
    return ResearcherFactory(username="researcher-user")


@pytest.fixture
def rater(db):
    return RaterFactory(username="rater-one")


@pytest.fixture
def rater2(db):
    return RaterFactory(username="rater-two")


@pytest.fixture
def admin_api(admin_user) -> APIClient:
    return _client_for(admin_user)


@pytest.fixture
def researcher_api(researcher) -> APIClient:
    return _client_for(researcher)


@pytest.fixture
def rater_api(rater) -> APIClient:
    return _client_for(rater)


@pytest.fixture
def fake_backend(monkeypatch):
    """Route the bundled and transformers backends to ``FakeBackend`` (no model, no torch)."""
    from model_runner import backends
    from tests.model_runner.fakes import FakeBackend

    for name in ("bundled", "transformers"):
        monkeypatch.setitem(backends._LOADERS, name, "tests.model_runner.fakes:fake_backend")
    FakeBackend.calls = []
    FakeBackend.during = None
    yield FakeBackend
    FakeBackend.calls = []
    FakeBackend.during = None
