"""manage.py bench_export: seed judgments into PostgreSQL with COPY, then time the trl -> Parquet export.

Prints one JSON object. The database is the one DATABASE_URL names (use a database of its own:
the bench adds ``bench-export-*`` queues and their data, and reuses them on the next run when the
counts match). Each export runs in a child process so its peak memory (``ru_maxrss``, minus the
child's baseline after Django and pyarrow are loaded and pyarrow's lazy pandas shim is warmed
up; that warm-up is reported as ``library_warmup_mb``) is its own.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench \\
        python manage.py bench_export --judgments 1000000

measures the export of the first ``--judgments``/10 judgments (one queue) and of all of them.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from export.benchseed import SeedPlan, seed, seed_is_current
from export.selectors.pair_chunks import COLUMN_CHUNK_SIZE
from labeling.models import Queue

OVERLAP = 5  # judgments per comparison
RATERS = 50
PREFIX = "bench-export"


class Command(BaseCommand):
    help = "Seed N judgments into PostgreSQL (COPY) and measure the trl -> Parquet export: rows/s and peak memory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--judgments", type=int, default=100_000, help="Total judgments (default 100000)."
        )
        parser.add_argument("--reseed", action="store_true", help="Drop the bench data and seed again.")
        parser.add_argument("--measure", help=argparse_hidden())
        parser.add_argument("--out", help=argparse_hidden())

    def handle(self, *args: Any, **o: Any) -> None:
        if o["measure"] is not None:
            self._measure(json.loads(o["measure"]), Path(o["out"]))
            return
        if connection.vendor != "postgresql":
            raise CommandError(
                "bench_export needs PostgreSQL: set DATABASE_URL=postgres://.../<its own database>."
            )
        total = o["judgments"]
        if total < 10 * OVERLAP:
            raise CommandError(f"--judgments must be at least {10 * OVERLAP}.")
        call_command("migrate", verbosity=0)
        small = (total // 10) // OVERLAP * OVERLAP
        large = total // OVERLAP * OVERLAP
        started = time.perf_counter()
        seeded = self._seed(small=small, large=large, reseed=o["reseed"])
        seed_seconds = round(time.perf_counter() - started, 1)
        queue_a = Queue.objects.get(name=f"{PREFIX}-a").pk
        runs = []
        with tempfile.TemporaryDirectory() as tmp:
            for label, filters in ((small, {"queues": [queue_a]}), (large, {})):
                runs.append(self._child(label, filters, Path(tmp)))
        result = {
            "database": connection.settings_dict["NAME"],
            "judgments_seeded": large,
            "seeded_now": seeded,
            "seed_seconds": seed_seconds,
            "view": "trl (conversational, explicit prompt), raw, Parquet only, test_fraction 0.1",
            "path": f"columnar (export.columnar), chunks of {COLUMN_CHUNK_SIZE} judgments",
            "runs": runs,
            "peak_ratio_large_to_small": round(
                runs[1]["peak_delta_mb"] / max(runs[0]["peak_delta_mb"], 0.1), 2
            ),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
        self.stdout.write(json.dumps(result, indent=2))

    # --- measuring (child process) --------------------------------------------------------------

    def _child(self, judgments: int, filters: dict[str, Any], tmp: Path) -> dict[str, Any]:
        out = tmp / f"run-{judgments}"
        spec = json.dumps({"filters": filters})
        proc = subprocess.run(
            [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "bench_export",
                "--measure",
                spec,
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            check=False,
        )
        if proc.returncode != 0:
            raise CommandError(f"measuring child failed:\n{proc.stderr[-4000:]}")
        return json.loads(proc.stdout)

    def _measure(self, request: dict[str, Any], out: Path) -> None:
        from export.services.snapshot import export_snapshot_write
        from export.spec import export_spec_clean

        spec = export_spec_clean(
            name="bench",
            format="trl",
            filters=request["filters"],
            options={"files": ["parquet"], "test_fraction": 0.1},
        )
        import pyarrow as pa

        # pyarrow imports its pandas shim on first use (~40 MB, once per process, whatever the
        # size of the export): load it before the baseline, and report it on its own.
        before_warmup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        pa.array([0])
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        manifest = export_snapshot_write(spec=spec, folder=out)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.stdout.write(
            json.dumps(
                {
                    "judgments": manifest["judgments"],
                    "rows": manifest["rows"],
                    "seconds": round(seconds, 2),
                    "rows_per_s": round(manifest["rows"] / seconds),
                    "library_warmup_mb": round((baseline - before_warmup) / 1024, 1),
                    "baseline_rss_mb": round(baseline / 1024, 1),
                    "peak_rss_mb": round(peak / 1024, 1),
                    "peak_delta_mb": round((peak - baseline) / 1024, 1),
                    "parquet_bytes": sum(f["bytes"] for f in manifest["files"] if f["kind"] == "parquet"),
                }
            )
        )

    # --- seeding --------------------------------------------------------------------------------

    def _seed(self, *, small: int, large: int, reseed: bool) -> bool:
        small_items = small // OVERLAP
        plan = SeedPlan(
            prefix=PREFIX,
            queue_items=(small_items, large // OVERLAP - small_items),
            overlap=OVERLAP,
            raters=RATERS,
        )
        if not reseed and seed_is_current(plan):
            return False
        seed(plan)
        return True


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS
