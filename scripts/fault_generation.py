"""One generation job drained by real Celery workers while a fault strikes; prints JSON.

Run by ``scripts/fault_worker_kill.sh`` (``--fault kill``) and ``scripts/fault_redis_restart.sh``
(``--fault redis``), which start a private PostgreSQL and Redis and set the environment
(``scripts/fault_lib.sh``). It starts the production processes on this machine — ``--gpu-workers``
workers on the ``gpu`` queue (solo pool, prefetch 1, as the Procfile runs them), one ``default``
worker and beat — makes a job of prompts x 2 generators x K samples with the bundled model and a
few new tokens, and once a quarter of it is written:

- ``kill``: SIGKILLs one ``gpu`` worker while it holds a batch (its message stays unacknowledged in
  Redis for the hour of the visibility timeout; the stall check sends the batch again after
  ``PREFLAB_BATCH_STALL_SECONDS``);
- ``redis``: stops the private Redis (without persistence: every queued message is lost) for
  ``--down-seconds`` and starts it again.

Then it waits for the job to finish and checks with SQL that there is exactly one candidate per
(prompt, generator, sample index): count = prompts x generators x K, none missing, none twice.
Exits 1 when the job does not succeed within ``--timeout`` seconds or a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from comparisons.models import Prompt, messages_hash  # noqa: E402
from model_runner.models import GenerationBatch, GenerationJob, Generator  # noqa: E402
from model_runner.services import generation_job_create  # noqa: E402

CELERY = [sys.executable, "-m", "celery", "-A", "labeling"]


def _log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")


class Processes:
    """The worker and beat processes, each in a session of its own (a kill takes its children)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str]) -> None:
        log = (self.folder / f"{name}.log").open("ab")
        self.running[name] = subprocess.Popen(
            args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.running[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.running.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _prewarm_model() -> float:
    """Convert the bundled model once (into PREFLAB_MODEL_CACHE) before the workers start, so three
    workers do not convert it at once; in a child, so this process never imports torch."""
    started = time.monotonic()
    code = (
        "import django; django.setup();"
        "from model_runner.backends.transformers_loading import bundled_gguf_path, gguf_convert_cached;"
        "from django.conf import settings; from pathlib import Path;"
        "from model_runner.backends.transformers_loading import BUNDLED_CACHE_NAME;"
        "gguf_convert_cached(bundled_gguf_path(), Path(settings.PREFLAB_MODEL_CACHE) / BUNDLED_CACHE_NAME)"
    )
    with (Path(os.environ.get("FAULT_DIR", "/tmp")) / "prewarm.log").open("ab") as log:
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT
        )
    return time.monotonic() - started


def _make_job(tag: str, n_prompts: int, k: int, max_new_tokens: int, batch_size: int) -> GenerationJob:
    generators = [
        Generator.objects.create(
            name=f"fault-{tag}-{i}",
            backend=Generator.Backend.BUNDLED,
            # One torch thread each: several workers share the machine's cores.
            options={"threads": 1},
            sampling={"max_new_tokens": max_new_tokens, "seed": i},
        )
        for i in range(2)
    ]
    messages = [
        [{"role": "user", "content": f"Fault run {tag}: name a colour ({i})."}] for i in range(n_prompts)
    ]
    prompts = Prompt.objects.bulk_create(
        [Prompt(messages=m, content_hash=messages_hash(m), collection=f"fault-{tag}") for m in messages]
    )
    return generation_job_create(
        prompts=prompts, generators=generators, samples_per_prompt=k, batch_size=batch_size
    )


def _candidate_counts(job: GenerationJob) -> dict[str, int]:
    """Rows, distinct (prompt, generator, sample) keys, expected keys: straight SQL on the tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*),
                   count(DISTINCT (c.prompt_id, c.generator_id, c.sample_index))
              FROM comparisons_candidate c
             WHERE c.prompt_id IN (SELECT prompt_id FROM model_runner_generationjob_prompts WHERE generationjob_id = %s)
               AND c.generator_id IN (SELECT generator_id FROM model_runner_generationjob_generators WHERE generationjob_id = %s)
            """,
            [job.pk, job.pk],
        )
        rows, distinct = cursor.fetchone()
        cursor.execute(
            """
            SELECT (SELECT count(*) FROM model_runner_generationjob_prompts WHERE generationjob_id = %s)
                 * (SELECT count(*) FROM model_runner_generationjob_generators WHERE generationjob_id = %s)
                 * %s
            """,
            [job.pk, job.pk, job.samples_per_prompt],
        )
        (expected,) = cursor.fetchone()
    return {"rows": rows, "distinct": distinct, "expected": expected}


def _done(job_id: int) -> int:
    return GenerationJob.objects.values_list("done", flat=True).get(pk=job_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=["kill", "redis", "none"], required=True)
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4, help="prompts per task")
    parser.add_argument("--gpu-workers", type=int, default=3)
    parser.add_argument("--down-seconds", type=float, default=5.0, help="redis: how long it stays down")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the job, from its start")
    parser.add_argument("--logs", default=os.environ.get("FAULT_DIR", "/tmp"))
    opts = parser.parse_args()

    folder = Path(opts.logs)
    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "scenario": {"kill": "worker_kill", "redis": "redis_restart", "none": "no_fault"}[opts.fault],
        "gpu_workers": opts.gpu_workers,
        "stall_seconds": float(os.environ.get("PREFLAB_BATCH_STALL_SECONDS", "300")),
    }
    result["model_prewarm_s"] = round(_prewarm_model(), 1)
    processes = Processes(folder)
    ok = False
    try:
        for i in range(opts.gpu_workers):
            processes.start(
                f"gpu{i}",
                [*CELERY, "worker", "-Q", "gpu", "--concurrency", "1", "--pool", "solo",
                 "--prefetch-multiplier", "1", "-n", f"fault-gpu{i}@%h", "--loglevel", "INFO"],
            )  # fmt: skip
        processes.start(
            "default",
            [*CELERY, "worker", "-Q", "default", "--concurrency", "1", "-n", "fault-default@%h", "--loglevel", "INFO"],
        )  # fmt: skip
        processes.start(
            "beat", [*CELERY, "beat", "--schedule", str(folder / "celerybeat-schedule"), "--loglevel", "INFO"]
        )
        tag = f"{int(time.time())}"
        job = _make_job(tag, opts.prompts, opts.samples, opts.max_new_tokens, opts.batch_size)
        started = time.monotonic()
        result["job"] = {
            "id": job.pk,
            "prompts": opts.prompts,
            "generators": 2,
            "samples_per_prompt": opts.samples,
            "max_new_tokens": opts.max_new_tokens,
            "tasks": (opts.prompts + opts.batch_size - 1) // opts.batch_size * 2,
            "candidates_expected": job.total,
        }
        _log(f"job {job.pk}: {job.total} candidates expected")

        deadline = started + opts.timeout
        victim = f"fault-gpu{opts.gpu_workers - 1}@"
        fault_at: float | None = None
        while time.monotonic() < deadline and fault_at is None and opts.fault != "none":
            done = _done(job.pk)
            if opts.fault == "kill":
                holds = GenerationBatch.objects.filter(job=job, worker__startswith=victim).exists()
                if done >= job.total // 4 and holds:
                    processes.kill(f"gpu{opts.gpu_workers - 1}")
                    fault_at = time.monotonic() - started
                    result["killed"] = {
                        "worker": victim.rstrip("@"),
                        "at_s": round(fault_at, 1),
                        "done_then": done,
                    }
                    _log(f"SIGKILL {victim} at {fault_at:.1f} s with {done} candidates written")
            elif done >= job.total // 4:
                fault_at = time.monotonic() - started
                subprocess.run(
                    ["bash", "-c", f"source scripts/fault_lib.sh; fault_redis_stop; sleep {opts.down_seconds}; fault_redis_start"],
                    cwd=ROOT, check=True,
                )  # fmt: skip
                result["redis_restart"] = {
                    "at_s": round(fault_at, 1),
                    "down_s": opts.down_seconds,
                    "done_then": done,
                    "back_at_s": round(time.monotonic() - started, 1),
                }
                _log(f"redis restarted at {fault_at:.1f} s with {done} candidates written")
            time.sleep(0.2)

        status = job.status
        while time.monotonic() < deadline:
            job.refresh_from_db()
            status = job.status
            if status in {
                GenerationJob.Status.SUCCEEDED,
                GenerationJob.Status.FAILED,
                GenerationJob.Status.CANCELLED,
            }:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        counts = _candidate_counts(job)
        default_log = (folder / "default.log").read_text(errors="replace")
        result.update(
            {
                "status": str(status),
                "errors": job.errors[:3],
                "seconds_to_finish": round(elapsed, 1),
                "seconds_after_fault": round(elapsed - fault_at, 1) if fault_at is not None else None,
                "candidates": counts["rows"],
                "candidates_expected": counts["expected"],
                "duplicates": counts["rows"] - counts["distinct"],
                "missing": counts["expected"] - counts["distinct"],
                "batches_still_taken": GenerationBatch.objects.filter(job=job).count(),
                # The stall check's log lines (model_runner.tasks): how recovery happened.
                "stall_check_resends": default_log.count("stalled generation batch(es) again"),
            }
        )
        ok = (
            status == GenerationJob.Status.SUCCEEDED
            and counts["rows"] == counts["distinct"] == counts["expected"]
            and (fault_at is not None or opts.fault == "none")
        )
    finally:
        processes.stop_all()
    result["ok"] = ok
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    if not ok:
        for name in processes.running:
            _log(f"--- tail of {name}.log")
            lines = (folder / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            sys.stderr.write("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
