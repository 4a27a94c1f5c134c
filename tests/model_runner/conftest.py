from __future__ import annotations

import pytest

from model_runner import backends
from tests.model_runner.fakes import FakeBackend


@pytest.fixture
def fake_backend(monkeypatch):
    """Route the bundled and transformers backends to ``FakeBackend`` (no model, no torch)."""
    for name in ("bundled", "transformers"):
        monkeypatch.setitem(backends._LOADERS, name, "tests.model_runner.fakes:fake_backend")
    FakeBackend.calls = []
    FakeBackend.during = None
    yield FakeBackend
    FakeBackend.calls = []
    FakeBackend.during = None
