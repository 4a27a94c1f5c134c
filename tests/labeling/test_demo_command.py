"""``manage.py demo``'s worker lives exactly as long as the command.

Runs the real command (SQLite and the embedded broker in a temporary var folder, the bundled model
with 1 sample x 2 tokens per prompt) in a subprocess, as ``make demo`` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

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
    args = ["--samples", "1", "--max-new-tokens", "2", "--addrport", f"127.0.0.1:{free_port()}"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "demo", *args],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _worker_pid(var: Path) -> int | None:
    """The pid in the worker's pidfile (celery writes it once the worker is up)."""
    try:
        return int((var / "worker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


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


def test_a_killed_demo_leaves_a_worker_that_the_next_run_stops_and_sigterm_stops_both(tmp_path, var):
    log = tmp_path / "demo.log"

    first = _demo(var, log)
    try:
        wait_for(
            lambda: "Preflab is running" in log.read_text(), 180, "the first demo to serve", log, poll=0.2
        )
        wait_for(lambda: _worker_pid(var) is not None, 180, "the worker's pidfile", log, poll=0.2)
        orphan = _worker_pid(var)
        assert orphan is not None
        assert "Debug mode is on for the demo (DJANGO_DEBUG=1)" in log.read_text()
        second_demo = _demo(var, tmp_path / "second.log")  # while the first still runs
        assert second_demo.wait(timeout=120) == 1
        assert "Another demo is running" in (tmp_path / "second.log").read_text()
        assert _alive(orphan)  # a running demo's worker is left alone

        first.kill()  # SIGKILL: no finally runs, the worker is orphaned
        first.wait(timeout=10)
        assert _alive(orphan)
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
        assert f"Stopping a worker left running by an earlier demo (pid {orphan})" in text
        assert "Reusing 24 candidates already generated" in text
        assert not _alive(orphan)
        wait_for(
            lambda: _worker_pid(var) not in (None, orphan), 180, "the new worker's pidfile", log, poll=0.2
        )
        worker = _worker_pid(var)
        assert worker is not None and _alive(worker)

        second.send_signal(signal.SIGTERM)  # as `kill` or a closing terminal (SIGHUP) would
        second.wait(timeout=60)
        wait_for(lambda: not _alive(worker), 30, "the worker to stop with its demo", log)
    finally:
        if second.poll() is None:
            second.kill()
