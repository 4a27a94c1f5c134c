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
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction
from django.utils import timezone

from comparisons.models import Candidate, Comparison, ComparisonCandidate, Prompt, messages_hash
from export.selectors.pair_chunks import COLUMN_CHUNK_SIZE
from labeling.models import Assignment, Judgment, Queue, QueueItem, Rubric, User
from model_runner.models import Generator

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
        queues = {q.name: q for q in Queue.objects.filter(name__startswith=PREFIX)}
        have = (
            Judgment.objects.filter(assignment__item__queue__name__startswith=PREFIX).count() if queues else 0
        )
        if queues and have == large and not reseed:
            a = queues.get(f"{PREFIX}-a")
            if a is not None and Judgment.objects.filter(assignment__item__queue=a).count() == small:
                return False
        self._drop()
        now = timezone.now()
        rubric = Rubric.objects.create(name=f"{PREFIX}-rubric", frozen=True)
        queue_a = Queue.objects.create(name=f"{PREFIX}-a", rubric=rubric, overlap=OVERLAP)
        queue_b = Queue.objects.create(name=f"{PREFIX}-b", rubric=rubric, overlap=OVERLAP)
        generator = Generator.objects.create(name=f"{PREFIX}-generator", backend=Generator.Backend.IMPORTED)
        raters = User.objects.bulk_create(
            User(username=f"{PREFIX}-rater-{i}", role=User.Role.RATER, password="!") for i in range(RATERS)
        )
        rater_ids = [u.pk for u in raters]
        items = large // OVERLAP
        small_items = small // OVERLAP
        base = {model: _next_id(model) for model in (Prompt, Candidate, Comparison, QueueItem, Assignment)}

        def prompt_rows() -> Iterator[dict[str, Any]]:
            for i in range(items):
                messages = [
                    {"role": "user", "content": f"Bench question {i}: explain item {i} in two sentences."}
                ]
                yield {
                    "id": base[Prompt] + i,
                    "external_id": f"{PREFIX}-{i}",
                    "messages": json.dumps(messages),
                    "content_hash": messages_hash(messages),
                }

        def candidate_rows() -> Iterator[dict[str, Any]]:
            for i in range(items):
                for s in range(2):
                    yield {
                        "id": base[Candidate] + 2 * i + s,
                        "prompt_id": base[Prompt] + i,
                        "generator_id": generator.pk,
                        "sample_index": s,
                        "text": f"Answer {s} to bench question {i}. "
                        + "It has a few more words to be realistic. " * 3,
                    }

        def comparison_rows() -> Iterator[dict[str, Any]]:
            for i in range(items):
                c = base[Candidate] + 2 * i
                yield {
                    "id": base[Comparison] + i,
                    "prompt_id": base[Prompt] + i,
                    "size": 2,
                    "candidate_key": f"{c},{c + 1}",
                }

        def member_rows() -> Iterator[dict[str, Any]]:
            for i in range(items):
                for s in range(2):
                    yield {
                        "comparison_id": base[Comparison] + i,
                        "candidate_id": base[Candidate] + 2 * i + s,
                        "position": s,
                    }

        def item_rows() -> Iterator[dict[str, Any]]:
            for i in range(items):
                yield {
                    "id": base[QueueItem] + i,
                    "queue_id": queue_a.pk if i < small_items else queue_b.pk,
                    "comparison_id": base[Comparison] + i,
                    "claimed": OVERLAP,
                    "judged": OVERLAP,
                }

        def assignment_rows() -> Iterator[dict[str, Any]]:
            for i in range(items):
                c = base[Candidate] + 2 * i
                for r in range(OVERLAP):
                    shown = [c, c + 1] if (i + r) % 2 == 0 else [c + 1, c]
                    yield {
                        "id": base[Assignment] + i * OVERLAP + r,
                        "item_id": base[QueueItem] + i,
                        "rater_id": rater_ids[(i * OVERLAP + r) % RATERS],
                        "status": Assignment.Status.SUBMITTED,
                        "shown_order": json.dumps(shown),
                        "expires_at": now + timedelta(minutes=15),
                    }

        def judgment_rows() -> Iterator[dict[str, Any]]:
            for n in range(items * OVERLAP):
                yield {
                    "assignment_id": base[Assignment] + n,
                    "rubric_id": rubric.pk,
                    "preference": (-3, -2, -1, 1, 2, 3, 0)[n % 7],
                    "active_seconds": 10.0 + n % 50,
                }

        with transaction.atomic():
            for model, rows in (
                (Prompt, prompt_rows()),
                (Candidate, candidate_rows()),
                (Comparison, comparison_rows()),
                (ComparisonCandidate, member_rows()),
                (QueueItem, item_rows()),
                (Assignment, assignment_rows()),
                (Judgment, judgment_rows()),
            ):
                _copy(model, rows, now=now)
            _reset_sequences()
        with connection.cursor() as cursor:
            for model in (
                Prompt,
                Candidate,
                Comparison,
                ComparisonCandidate,
                QueueItem,
                Assignment,
                Judgment,
            ):
                cursor.execute(f'ANALYZE "{model._meta.db_table}"')
        return True

    def _drop(self) -> None:
        prompts = Prompt.objects.filter(external_id__startswith=f"{PREFIX}-")
        with transaction.atomic():
            Judgment.objects.filter(assignment__item__queue__name__startswith=PREFIX).delete()
            Queue.objects.filter(name__startswith=PREFIX).delete()
            Comparison.objects.filter(prompt__in=prompts).delete()
            Candidate.objects.filter(prompt__in=prompts).delete()
            prompts.delete()
            Generator.objects.filter(name__startswith=PREFIX).delete()
            Rubric.objects.filter(name__startswith=PREFIX).delete()
            User.objects.filter(username__startswith=PREFIX).delete()


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def _next_id(model: type[models.Model]) -> int:
    last = model._default_manager.aggregate(m=models.Max("pk"))["m"]
    return (last or 0) + 1


def _copy(model: type[models.Model], rows: Iterator[dict[str, Any]], *, now: Any) -> None:
    """COPY rows into the model's table; columns not given get the field's default (JSON as text)."""
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.name != "id")]
    first = next(rows, None)
    if first is None:
        return
    given = [f for f in fields if f.attname in first or f.name in first]
    defaults: dict[str, Any] = {}
    for f in fields:
        if f in given:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            defaults[str(f.column)] = now
        elif f.primary_key:
            continue
        elif f.has_default() or not f.null:
            value = f.get_default()
            defaults[str(f.column)] = json.dumps(value) if isinstance(f, models.JSONField) else value
        else:
            defaults[str(f.column)] = None
    columns = [f.column for f in given] + list(defaults)
    keys = [f.attname if f.attname in first else f.name for f in given]
    constant = tuple(defaults.values())
    column_sql = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f'COPY "{model._meta.db_table}" ({column_sql}) FROM STDIN') as copy:
            for row in _chain(first, rows):
                copy.write_row(tuple(row[k] for k in keys) + constant)


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def _reset_sequences() -> None:
    from django.core.management.color import no_style

    sql = connection.ops.sequence_reset_sql(
        no_style(), [Prompt, Candidate, Comparison, ComparisonCandidate, QueueItem, Assignment, Judgment]
    )
    with connection.cursor() as cursor:
        for statement in sql:
            cursor.execute(statement)
