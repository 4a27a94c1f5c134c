"""manage.py bench_stats: seed one queue of N judgments into PostgreSQL (COPY), then time its
statistics (``GET /api/v1/queues/{id}/stats/``, the dashboard page) cold and warm, and the
leaderboard (``GET /api/v1/leaderboard/``, 100 bootstrap rounds, every battle in the database).

Prints one JSON object; progress goes to stderr. Use a database of its own:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_stats \\
        python manage.py bench_stats --judgments 1000000

The data (queue ``bench-stats-a``: 500 raters, overlap 3, varied preferences, a likert and a flag
criterion, 8 generators) is seeded once and reused by the next run of the same size
(``--reseed`` seeds again). Requests go through Django's test client (URL routing, middleware,
authentication, DRF rendering; no socket). Before timing, the judgments are folded into the
statistics' stored facts, as beat's ``fold-judgment-facts`` would (``facts_fold_seconds``; a
fold with nothing new: ``facts_refold_ms``). "Cold": the queue's cached answer is deleted first
(PostgreSQL's own buffers stay warm); "warm": served from the cache.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from export.benchseed import SeedPlan, seed, seed_is_current, stderr_progress
from labeling.benchstats import percentile_ms
from labeling.models import Criterion, Queue, User
from labeling.selectors.queue_stats import queue_stats_cache_key, queue_stats_fingerprint
from labeling.services.stats_facts import judgment_facts_fold_all

PREFIX = "bench-stats"
OVERLAP = 3
RATERS = 500
GENERATORS = 8
CRITERIA = (("clarity", Criterion.Kind.LIKERT), ("harmful", Criterion.Kind.FLAG))


def _mix(n: int) -> int:
    """A cheap deterministic hash of n (Knuth's multiplicative), for varied answers."""
    return (n * 2654435761) % 2**32 >> 8


def _preference(n: int, item: int, rater: int) -> int:
    """Mostly (70%) the item's own answer, otherwise any; in the labels shown (the seeder shows
    the pair swapped when item + rater is odd)."""
    truth = _mix(item) % 7 - 3
    answer = truth if _mix(n) % 10 < 7 else _mix(n + 1) % 7 - 3
    return answer if (item + rater) % 2 == 0 else -answer


def _extra(n: int, item: int, rater: int) -> dict[str, Any]:
    h = _mix(n + 2)
    clarity = {"A": 1 + (_mix(item) + h % 2) % 7, "B": 1 + (_mix(item + 1) + h % 3) % 7}
    harmful = _mix(item + 3) % 20 == 0 or h % 50 == 0
    return {
        "criteria": json.dumps({"clarity": clarity, "harmful": harmful}),
        "flags": json.dumps(["both_bad"] if h % 40 == 0 else []),
    }


class Command(BaseCommand):
    help = "Seed a queue of N judgments (PostgreSQL, COPY) and time its statistics and the leaderboard."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--judgments", type=int, default=1_000_000, help="Judgments (default 1000000).")
        parser.add_argument("--reseed", action="store_true", help="Drop the bench data and seed again.")
        parser.add_argument("--warm", type=int, default=20, help="Warm requests timed (default 20).")
        parser.add_argument("--cold", type=int, default=3, help="Cold requests timed (default 3).")

    def handle(self, *args: Any, **o: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_stats needs PostgreSQL: set DATABASE_URL=postgres://.../bench_stats.")
        if o["judgments"] < OVERLAP * 10:
            raise CommandError(f"--judgments must be at least {OVERLAP * 10}.")
        call_command("migrate", verbosity=0)
        plan = SeedPlan(
            prefix=PREFIX,
            queue_items=(o["judgments"] // OVERLAP,),
            overlap=OVERLAP,
            raters=RATERS,
            generators=GENERATORS,
            criteria=CRITERIA,
            preference=_preference,
            judgment_extra=_extra,
            progress=stderr_progress,
        )
        started = time.perf_counter()
        seeded = o["reseed"] or not seed_is_current(plan)
        if seeded:
            stderr_progress(f"seeding {plan.judgments} judgments ...")
            seed(plan)
        seed_seconds = round(time.perf_counter() - started, 1)
        queue = Queue.objects.select_related("rubric").get(name=f"{PREFIX}-a")
        # What beat's fold-judgment-facts does between requests: fold the new judgments into the
        # statistics' stored facts (all of them the first time after a seed).
        stderr_progress("folding the judgments into the statistics' facts ...")
        started = time.perf_counter()
        facts_added = judgment_facts_fold_all()
        fold_seconds = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        judgment_facts_fold_all()
        refold_ms = round(1000 * (time.perf_counter() - started), 1)
        # The test client's host, whatever DJANGO_ALLOWED_HOSTS says (no request leaves the process).
        with override_settings(ALLOWED_HOSTS=["testserver"]):
            result = self._measure(queue, o)
        result |= {
            "database": connection.settings_dict["NAME"],
            "judgments": plan.judgments,
            "raters": RATERS,
            "overlap": OVERLAP,
            "seeded_now": seeded,
            "seed_seconds": seed_seconds,
            "facts_added": facts_added,
            "facts_fold_seconds": fold_seconds,
            "facts_refold_ms": refold_ms,
            "cache_backend": settings.CACHES["default"]["BACKEND"],
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
        self.stdout.write(json.dumps(result, indent=2))

    def _measure(self, queue: Queue, o: dict[str, Any]) -> dict[str, Any]:
        client = self._client()
        api = reverse("api-queue-stats", args=[queue.pk])
        page = reverse("manage-queue", args=[queue.pk])
        fingerprint_ms = self._fingerprint_ms(queue)
        results: dict[str, Any] = {}
        for name, url in (("stats", api), ("dashboard", page)):
            stderr_progress(f"timing {name} cold x{o['cold']} ...")
            cold = [self._timed(client, url, forget=queue) for _ in range(o["cold"])]
            stderr_progress(f"timing {name} warm x{o['warm']} ...")
            warm = [self._timed(client, url) for _ in range(o["warm"])]
            results[name] = {"cold_ms": cold, "warm": warm}
        stderr_progress("timing the leaderboard (100 rounds) ...")
        board = reverse("api-leaderboard")
        leaderboard = [self._timed(client, f"{board}?rounds=100") for _ in range(2)]
        body = client.get(f"{board}?rounds=100").json()
        return {
            "fingerprint_ms": fingerprint_ms,
            "stats_cold_ms": max(results["stats"]["cold_ms"]),
            "stats_cold_runs_ms": results["stats"]["cold_ms"],
            "stats_p95_ms": percentile_ms(results["stats"]["warm"], 95),
            "stats_p50_ms": percentile_ms(results["stats"]["warm"], 50),
            "dashboard_cold_ms": max(results["dashboard"]["cold_ms"]),
            "dashboard_p95_ms": percentile_ms(results["dashboard"]["warm"], 95),
            "leaderboard_seconds": round(max(leaderboard), 2),
            "leaderboard_runs_seconds": [round(s, 2) for s in leaderboard],
            "leaderboard_battles": body["battles"],
        }

    def _client(self) -> Client:
        admin, _ = User.objects.get_or_create(
            username=f"{PREFIX}-admin", defaults={"role": User.Role.ADMIN, "password": "!"}
        )
        host = next(
            (h for h in settings.ALLOWED_HOSTS if h and not h.startswith(".") and h != "*"), "localhost"
        )
        client = Client(HTTP_HOST=host, secure=settings.SECURE_SSL_REDIRECT)
        client.force_login(admin)
        return client

    def _fingerprint_ms(self, queue: Queue) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            queue_stats_fingerprint(queue=queue)
            times.append(time.perf_counter() - started)
        return round(1000 * sorted(times)[len(times) // 2], 1)

    def _timed(self, client: Client, url: str, *, forget: Queue | None = None) -> float:
        """Seconds for one GET (ms for cold runs, rounded), after deleting the cached answer."""
        if forget is not None:
            cache.delete(
                queue_stats_cache_key(queue=forget, fingerprint=queue_stats_fingerprint(queue=forget))
            )
        started = time.perf_counter()
        response = client.get(url)
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise CommandError(f"GET {url}: {response.status_code} {response.content[:500]!r}")
        return round(seconds * 1000, 1) if forget is not None else seconds
