"""``manage.py demo``'s workers live exactly as long as the command, and a newcomer can chat.

Runs the real command (SQLite and the embedded broker in a temporary var folder, the bundled model
with 1 sample x 2 tokens per prompt) in a subprocess, as ``make demo`` does, and has a demo rater
chat with the bundled model over HTTP (the interactive worker answers the turn).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from labeling.benchstats import free_port
from tests.waiting import wait_for

pytestmark = [pytest.mark.model, pytest.mark.worker]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _demo(var: Path, log: Path) -> subprocess.Popen[bytes]:
    # No DJANGO_DEBUG either: the demo turns debug on for itself, as `make demo` relies on.
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_DEBUG")
    }
    env.update(
        PREFLAB_VAR_DIR=str(var),
        PREFLAB_MODEL_CACHE=str(settings.PREFLAB_MODEL_CACHE),  # the conversion the suite already made
        PYTHONUNBUFFERED="1",
    )
    args = ["--samples", "1", "--max-new-tokens", "2", "--addrport", f"127.0.0.1:{_port(var)}"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "demo", *args],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


WORKERS = ("worker", "worker-interactive")  # default + gpu (with beat), and interactive


def _worker_pid(var: Path, name: str = "worker") -> int | None:
    """The pid in a worker's pidfile (celery writes it once the worker is up)."""
    try:
        return int((var / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _worker_pids(var: Path) -> dict[str, int | None]:
    return {name: _worker_pid(var, name) for name in WORKERS}


def _call(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> Any:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Token {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _chat_one_turn(base: str, var: Path) -> dict[str, Any]:
    """rater1 logs in, opens a session of the demo's conversation template, says hello, waits for
    the model's alternatives (the interactive worker loads the model for its first turn) and ranks
    them. Returns the answered turn."""
    password = json.loads((var / "demo_logins.json").read_text())["rater1"]
    token = _call(f"{base}api/v1/auth/token/", "POST", {"username": "rater1", "password": password})["token"]
    (template,) = _call(f"{base}api/v1/session-templates/", token=token)
    assert template["name"] == "Demo: chat with SmolLM2" and template["alternatives"] == 4
    session = _call(f"{base}api/v1/sessions/", "POST", {"queue": template["id"]}, token)
    _call(f"{base}api/v1/sessions/{session['id']}/messages/", "POST", {"text": "Hello! Who are you?"}, token)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        turn: dict[str, Any] = _call(f"{base}api/v1/sessions/{session['id']}/", token=token)["turns"][-1]
        if turn["status"] not in ("pending", "generating"):
            break
        time.sleep(0.5)
    assert turn["status"] == "ready", turn
    labels = [a["label"] for a in turn["alternatives"]]
    _call(
        f"{base}api/v1/assignments/{turn['assignment']}/judgment/",
        "POST",
        {"ranking": [[label] for label in labels]},
        token,
    )
    return turn


def _port(var: Path) -> int:
    """The demo's port: one per var folder, kept in a file beside it, so the test knows it."""
    path = var.parent / "port"
    if not path.exists():
        path.write_text(str(free_port()))
    return int(path.read_text())


@pytest.fixture
def var(tmp_path):
    """The demo's var folder; whatever still runs with it on its command line is killed afterwards."""
    folder = tmp_path / "var"
    folder.mkdir()
    yield folder
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder).encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            pass


def test_a_killed_demo_leaves_workers_that_the_next_run_stops_and_sigterm_stops_all(tmp_path, var):
    log = tmp_path / "demo.log"
    base = f"http://127.0.0.1:{_port(var)}/"

    first = _demo(var, log)
    try:
        wait_for(
            lambda: "Preflab is running" in log.read_text(), 180, "the first demo to serve", log, poll=0.2
        )
        wait_for(lambda: None not in _worker_pids(var).values(), 180, "the workers' pidfiles", log, poll=0.2)
        orphans = _worker_pids(var)
        assert len(set(orphans.values())) == 2
        text = log.read_text()
        assert "Debug mode is on for the demo (DJANGO_DEBUG=1)" in text
        assert "Starting a Celery worker for interactive" in text and f"{base}chat/" in text
        # A newcomer chats on the first run: the interactive worker answers with 4 alternatives.
        wait_for(lambda: _serving(base), 60, "the development server", log, poll=0.2)
        turn = _chat_one_turn(base, var)
        assert [a["label"] for a in turn["alternatives"]] == ["A", "B", "C", "D"][: len(turn["alternatives"])]
        assert (
            "Task labeling.tasks.session_turn_generate_task" in (var / "worker-interactive.log").read_text()
        )

        second_demo = _demo(var, tmp_path / "second.log")  # while the first still runs
        assert second_demo.wait(timeout=120) == 1
        assert "Another demo is running" in (tmp_path / "second.log").read_text()
        assert all(_alive(pid) for pid in orphans.values() if pid)  # a running demo's workers are left alone

        first.kill()  # SIGKILL: no finally runs, the workers are orphaned
        first.wait(timeout=10)
        assert all(_alive(pid) for pid in orphans.values() if pid)
    finally:
        if first.poll() is None:
            first.kill()

    log.write_text("")
    second = _demo(var, log)
    try:
        wait_for(
            lambda: "Preflab is running" in log.read_text(), 180, "the second demo to serve", log, poll=0.2
        )
        text = log.read_text()
        for pid in orphans.values():
            assert f"Stopping a worker left running by an earlier demo (pid {pid})" in text
            assert pid is not None and not _alive(pid)
        assert "Reusing 24 candidates already generated" in text
        # The conversation template is reused, with its session.
        with sqlite3.connect(var / "preflab.sqlite3") as db:
            assert db.execute(
                "SELECT count(*) FROM labeling_queue WHERE name = 'Demo: chat with SmolLM2'"
            ).fetchone() == (1,)
            assert db.execute("SELECT count(*) FROM labeling_session").fetchone() == (1,)
        wait_for(
            lambda: all(_worker_pid(var, n) not in (None, orphans[n]) for n in WORKERS),
            180,
            "the new workers' pidfiles",
            log,
            poll=0.2,
        )
        workers = _worker_pids(var)
        assert all(pid is not None and _alive(pid) for pid in workers.values())

        second.send_signal(signal.SIGTERM)  # as `kill` or a closing terminal (SIGHUP) would
        second.wait(timeout=60)
        wait_for(
            lambda: not any(_alive(pid) for pid in workers.values() if pid),
            30,
            "the workers to stop with their demo",
            log,
        )
    finally:
        if second.poll() is None:
            second.kill()


def _serving(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}api/v1/queues/", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # answered (401 without a key)
    except OSError:
        return False
