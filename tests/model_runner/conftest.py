from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from model_runner import backends
from tests.model_runner.fakes import FakeBackend
from tests.model_runner.openai_server import ChatServer, Script


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


@pytest.fixture
def chat_server() -> Iterator[Callable[[Script], ChatServer]]:
    """Start OpenAI-compatible test servers answering as a script says; all stopped afterwards."""
    servers: list[ChatServer] = []

    def start(script: Script) -> ChatServer:
        server = ChatServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
