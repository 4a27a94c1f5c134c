"""The process layout an operator runs as it is: the Procfile under honcho (one host) and the
systemd units in deploy/systemd/ (several hosts)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from labeling.benchstats import free_port

ROOT = Path(settings.BASE_DIR)
UNITS = ROOT / "deploy" / "systemd"
PROCFILE = ROOT / "Procfile"


def _procfile() -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_-]+):\s*(.+)$", PROCFILE.read_text(), re.M))


def test_procfile_runs_each_kind_of_process_once():
    processes = _procfile()
    assert list(processes) == ["web", "worker", "interactive", "gpu", "beat"]
    assert "gunicorn labeling.wsgi" in processes["web"]
    assert "-Q default " in processes["worker"]
    for name in ("interactive", "gpu"):
        # One model batch at a time, models kept in the process, nothing prefetched behind it.
        assert f"-Q {name} --concurrency 1 --pool solo --prefetch-multiplier 1" in processes[name]
    assert "celery -A labeling beat" in processes["beat"]


def test_systemd_units_serve_the_same_queues_as_the_procfile():
    text = {path.name: path.read_text() for path in UNITS.glob("*")}
    assert set(text) == {
        "preflab.target",
        "preflab-web.service",
        "preflab-worker.service",
        "preflab-interactive-worker.service",
        "preflab-gpu-worker@.service",
        "preflab-beat.service",
    }
    for name, body in text.items():
        if name.endswith(".service"):
            assert "EnvironmentFile=/etc/preflab/preflab.env" in body, name
            assert "WantedBy=preflab.target" in body and "PartOf=preflab.target" in body, name
    gpu = text["preflab-gpu-worker@.service"]
    assert "Environment=CUDA_VISIBLE_DEVICES=%i" in gpu
    # %h is systemd's home-directory specifier: Celery's own %h must be written %%h.
    assert "-n gpu%i@%%h" in gpu
    assert (
        "-Q interactive --concurrency 1 --pool solo --prefetch-multiplier 1"
        in text["preflab-interactive-worker.service"]
    )
    assert "-Q default " in text["preflab-worker.service"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed on this machine"
)
def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    # Installed as the docs say: the checkout in /srv/preflab/app, the variables in /etc/preflab/.
    # verify checks that each command exists, so point the copies at this checkout and an env file.
    env_file = tmp_path / "preflab.env"
    env_file.write_text("DJANGO_DEBUG=0\n")
    for unit in UNITS.glob("*"):
        text = unit.read_text().replace("/srv/preflab/app", str(ROOT))
        (tmp_path / unit.name).write_text(text.replace("/etc/preflab/preflab.env", str(env_file)))
    names = [
        "preflab.target",
        "preflab-web.service",
        "preflab-worker.service",
        "preflab-interactive-worker.service",
        "preflab-gpu-worker@0.service",
        "preflab-beat.service",
    ]
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(f"./{name}" for name in names)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on unknown keys and unparseable values, but says so: any line is a problem.
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


# What each Procfile process prints once it serves (honcho prefixes each line with its name).
READY = {
    "worker": r"^\S+ worker\.1 +\| .* default@\S+ ready\.",
    "interactive": r"^\S+ interactive\.1 +\| .* interactive@\S+ ready\.",
    "gpu": r"^\S+ gpu\.1 +\| .* gpu@\S+ ready\.",
    "beat": r"^\S+ beat\.1 +\| .*beat: Starting",
}


def _marked(marker: str) -> list[psutil.Process]:
    """Processes whose environment carries the marker (each process started for the test)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PREFLAB_LAYOUT_TEST") == marker:
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


@pytest.mark.worker
def test_procfile_under_honcho_becomes_ready_and_stops_cleanly(tmp_path):
    """Every Procfile process on SQLite and the filesystem broker: /readyz answers 200 within 90 s,
    and stopping honcho leaves no process behind."""
    honcho = Path(sys.executable).parent / "honcho"
    if not honcho.exists():
        message = "honcho is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI"):
            pytest.fail(message + ": the Procfile test must run in CI")
        pytest.skip(message)
    var = tmp_path / "var"
    env_file = tmp_path / "preflab.env"
    env_file.write_text(
        "\n".join(
            [
                "DJANGO_DEBUG=0",
                f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}",
                "DJANGO_ALLOWED_HOSTS=127.0.0.1",
                "DJANGO_SECURE_COOKIES=0",
                f"PREFLAB_VAR_DIR={var}",
                f"DATABASE_URL=sqlite:///{tmp_path / 'preflab.sqlite3'}",
                "CELERY_BROKER_URL=filesystem://",
                "WEB_CONCURRENCY=1",
                "PREFLAB_WORKER_CONCURRENCY=1",
                "HF_HUB_OFFLINE=1",
            ]
        )
        + "\n"
    )
    marker = uuid.uuid4().hex
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),  # gunicorn keeps its control socket under ~/.gunicorn
        "VENV": str(Path(sys.executable).parent.parent),
        "PREFLAB_LAYOUT_TEST": marker,
    }
    file_env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env={**env, **file_env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
    port = free_port()
    log = (tmp_path / "honcho.log").open("w")
    manager = subprocess.Popen(
        [str(honcho), "start", "--no-colour", "-p", str(port), "-e", str(env_file)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # Ready: the web answers /readyz, and each worker says it is ready (beat that it started).
        deadline = time.monotonic() + 90
        status, output, waiting = 0, "", ["web"]
        while time.monotonic() < deadline and manager.poll() is None:
            status = _get(f"http://127.0.0.1:{port}/readyz")
            output = (tmp_path / "honcho.log").read_text()
            waiting = [name for name, line in READY.items() if not re.search(line, output, re.M)]
            if status == 200 and not waiting:
                break
            time.sleep(1)
        assert status == 200, f"/readyz answered {status}; honcho said:\n{output[-4000:]}"
        assert not waiting, f"not ready after 90 s: {waiting}; honcho said:\n{output[-4000:]}"
        assert _get(f"http://127.0.0.1:{port}/healthz") == 200
        assert len(_marked(marker)) >= 5
    finally:
        if manager.poll() is None:
            manager.send_signal(signal.SIGTERM)
            try:
                manager.wait(timeout=45)
            except subprocess.TimeoutExpired:
                manager.kill()
        log.close()
        # Anything still running was left behind: end it (only our own, by id) and fail.
        deadline = time.monotonic() + 10
        left = _marked(marker)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = _marked(marker)
        for proc in left:
            proc.kill()
    assert manager.returncode is not None
    assert left == [], [p.info if hasattr(p, "info") else p.pid for p in left]
