from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.model_runner.openai_server import ChatServer, Script


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
