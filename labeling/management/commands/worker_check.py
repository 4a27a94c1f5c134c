"""``manage.py worker_check``: can a Celery worker serving these queues do its work here?

Checks the broker, the database and its migrations (as ``/readyz`` does), and, for a worker that
serves a generation queue (``gpu`` or a queue a generator is pinned to), that torch sees a GPU and
that the bundled model is converted in the model cache. Prints one line per check (``--json``: a
JSON report) and exits 1 naming each failed check, so a service manager or a deploy script can run
it before starting the worker (``ExecStartPre=``).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.health import CheckResult, check_broker, check_database, check_migrations


def _queues(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise CommandError("--queues: give at least one queue name, e.g. --queues gpu,default")
    return names


class Command(BaseCommand):
    help = (
        "Check what a Celery worker serving --queues needs: broker, database, migrations, and for a "
        "generation queue a visible GPU and the bundled model's cache. Exit 1 on any failure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queues",
            default="default",
            help="comma-separated queues the worker serves, as given to celery -Q (default: default)",
        )
        parser.add_argument(
            "--no-gpu",
            action="store_true",
            help="the worker runs its models on the CPU (one machine, CI): skip the GPU check",
        )
        parser.add_argument("--json", action="store_true", help="print a JSON report")

    def handle(self, *args: Any, **opts: Any) -> None:
        queues = _queues(opts["queues"])
        results: list[CheckResult] = [check_broker(), database := check_database()]
        skipped: dict[str, str] = {}
        if database.ok:
            results.append(check_migrations())
        else:
            skipped["migrations"] = "the database is unreachable"
        gpu_queues, bundled_queues = self._model_queues(queues, database.ok)
        if not gpu_queues:
            skipped["gpu"] = "the worker serves no generation queue"
        elif opts["no_gpu"]:
            skipped["gpu"] = "--no-gpu: models run on the CPU"
        else:
            results.append(self._model_check("gpu", "gpu_status"))
        if bundled_queues:
            results.append(self._model_check("model_cache", "bundled_model_status"))
        else:
            skipped["model_cache"] = "no queue of the worker runs the bundled generator"
        failed = [r for r in results if not r.ok]
        if opts["json"]:
            report = {
                "ok": not failed,
                "queues": queues,
                "checks": {r.name: {"ok": r.ok, "detail": r.detail, "ms": r.ms} for r in results},
                "skipped": skipped,
                "failed": [r.name for r in failed],
            }
            self.stdout.write(json.dumps(report, indent=2))
        else:
            for r in results:
                self.stdout.write(f"{'ok' if r.ok else 'FAILED':>8}  {r.name}: {r.detail}")
            for name, reason in skipped.items():
                self.stdout.write(f"{'skipped':>8}  {name}: {reason}")
        if failed:
            raise CommandError(
                "worker not ready: " + "; ".join(f"{r.name}: {r.detail}" for r in failed), returncode=1
            )

    @staticmethod
    def _model_queues(queues: list[str], database_ok: bool) -> tuple[list[str], list[str]]:
        """(served queues whose models need a GPU, served queues the bundled generator runs on)."""
        from model_runner.selectors import generator_queues

        served = set(queues)
        local, bundled = generator_queues(database=database_ok)
        return sorted(served & local), sorted(served & bundled)

    @staticmethod
    def _model_check(name: str, function: str) -> CheckResult:
        # model_runner.backends.health imports torch inside its functions, and only when called.
        import time

        from model_runner.backends import health

        started = time.perf_counter()
        ok, detail = getattr(health, function)()
        return CheckResult(name, ok, detail, round((time.perf_counter() - started) * 1000, 1))
