"""``manage.py worker_check``: broker, database, migrations, and for a generation queue a visible GPU
and the bundled model's cache; one line per check or ``--json``; exit 1 naming each failed check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from labeling import health
from labeling.benchstats import free_port
from model_runner.services import generator_create
from tests.real_workers import database_url


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch):
    monkeypatch.setattr(health, "_migrations_applied", False)


@pytest.fixture
def fake_gpu(monkeypatch):
    """The GPU check's answer, without CUDA: (ok, detail)."""
    from model_runner.backends import health as model_health

    def set_answer(ok: bool, detail: str) -> None:
        monkeypatch.setattr(model_health, "gpu_status", lambda: (ok, detail))

    return set_answer


def _check(*args: str) -> dict:
    out = StringIO()
    call_command("worker_check", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def _failing(*args: str) -> tuple[dict, str]:
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("worker_check", *args, "--json", stdout=out)
    assert excinfo.value.returncode == 1
    return json.loads(out.getvalue()), str(excinfo.value)


def _converted_bundled_model(cache: Path) -> None:
    """A model cache folder as the transformers backend leaves it (without the weights)."""
    from model_runner.backends.transformers_loading import (
        BUNDLED_CACHE_NAME,
        META_FILE,
        _fingerprint,
        bundled_gguf_path,
    )

    folder = cache / BUNDLED_CACHE_NAME
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    meta = {"revision": "0123456789abcdef", "fingerprint": _fingerprint(bundled_gguf_path())}
    (folder / META_FILE).write_text(json.dumps(meta))


def test_default_worker_checks_broker_database_and_migrations(db):
    report = _check()
    assert report["ok"] is True
    assert report["queues"] == ["default"]
    assert set(report["checks"]) == {"broker", "database", "migrations"}
    assert set(report["skipped"]) == {"gpu", "model_cache"}

    out = StringIO()
    call_command("worker_check", stdout=out)
    lines = out.getvalue().splitlines()
    assert any(line.split() == ["ok", "migrations:", "all", "applied"] for line in lines)
    assert any(line.strip().startswith("skipped  gpu:") for line in lines)


def test_gpu_queue_without_a_gpu_fails_naming_it(db, settings, tmp_path, fake_gpu):
    settings.PREFLAB_MODEL_CACHE = tmp_path / "models"
    _converted_bundled_model(settings.PREFLAB_MODEL_CACHE)
    fake_gpu(False, "torch 2.13.0 sees no CUDA device (CUDA_VISIBLE_DEVICES=3)")
    report, message = _failing("--queues", "gpu")
    assert report["failed"] == ["gpu"]
    assert message == "worker not ready: gpu: torch 2.13.0 sees no CUDA device (CUDA_VISIBLE_DEVICES=3)"
    assert report["checks"]["model_cache"]["ok"] is True

    fake_gpu(True, "1 CUDA device(s): NVIDIA H200")
    assert _check("--queues", "gpu,default")["ok"] is True
    # A CPU-only worker (one machine, CI) says so.
    fake_gpu(False, "no CUDA")
    report = _check("--queues", "gpu", "--no-gpu")
    assert report["skipped"]["gpu"] == "--no-gpu: models run on the CPU"


def test_gpu_check_is_real_torch_on_this_machine(db):
    from model_runner.backends.health import gpu_status

    ok, detail = gpu_status()
    assert "CUDA device" in detail
    import torch

    assert ok == torch.cuda.is_available()


def test_missing_model_cache_fails_with_where_and_how(db, settings, tmp_path, fake_gpu):
    settings.PREFLAB_MODEL_CACHE = tmp_path / "models"
    fake_gpu(True, "1 CUDA device(s)")
    report, message = _failing("--queues", "gpu")
    assert report["failed"] == ["model_cache"]
    detail = report["checks"]["model_cache"]["detail"]
    assert detail.startswith(f"not converted yet: {tmp_path / 'models'}")
    assert "model_cache: not converted yet" in message


def test_pinned_queues_decide_which_checks_run(db, settings, tmp_path, fake_gpu):
    settings.PREFLAB_MODEL_CACHE = tmp_path / "models"
    fake_gpu(False, "no CUDA")
    generator_create(name="big", backend="transformers", model_path=str(tmp_path), queue="gpu-a100")
    generator_create(
        name="remote", backend="openai", model_path="http://vllm.internal:8000/v1", queue="remote"
    )
    # A local model's queue needs a GPU; the bundled generator does not run there.
    report, _ = _failing("--queues", "gpu-a100")
    assert report["failed"] == ["gpu"]
    assert "model_cache" in report["skipped"]
    # An endpoint's queue needs neither.
    assert _check("--queues", "remote")["ok"] is True


def test_unreachable_broker_exits_1_from_the_command_line(transactional_db, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
        "PREFLAB_VAR_DIR": str(tmp_path / "var"),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "worker_check", "--queues", "default"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED  broker: OperationalError" in done.stdout
    assert "ok  database:" in done.stdout
    assert "worker not ready: broker:" in done.stderr


def test_empty_queue_list_is_refused(db):
    with pytest.raises(CommandError, match="--queues: give at least one queue name"):
        call_command("worker_check", "--queues", " , ")
