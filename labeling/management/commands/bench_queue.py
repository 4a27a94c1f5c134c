"""``manage.py bench_queue``: queue throughput and latency over real HTTP, plus the claim rate.

Starts gunicorn against the configured database (use PostgreSQL: ``DATABASE_URL``), or drives a
server already running (``--url``, which must use the same database: e.g. gunicorn behind
PgBouncer, ``scripts/bench_gunicorn_pgbouncer.sh``), creates a throw-away queue with R raters, and has each rater loop next -> judgment with no think time
until the judgment budget is spent. Prints JSON: judgments per second, p50/p95/p99 latency of
next and submit, server CPU ms per judgment (gunicorn processes, and PostgreSQL backends where
readable), and the invariant counts (double leases, over-overlap), which must be 0. Then the
service-level claim rate (no HTTP) with 1, 4 and 8 concurrent claimers.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, connections
from django.db.models import Count, Q

from comparisons.models import Candidate, Comparison, ComparisonCandidate, Prompt, messages_hash
from labeling import benchstats
from labeling.models import Assignment, Queue, QueueItem, Rubric, User
from labeling.services import assignment_claim_next, judgment_submit
from labeling.services.api_keys import api_key_create
from model_runner.models import Generator


class Command(BaseCommand):
    help = "Benchmark the queue over HTTP (gunicorn) and at the service level; prints JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--raters", type=int, default=8)
        parser.add_argument("--judgments", type=int, default=2000, help="Stop after this many judgments.")
        parser.add_argument("--overlap", type=int, default=2)
        parser.add_argument(
            "--workers", type=int, default=2, help="gunicorn worker processes (2 was best on 2 cores)"
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=1,
            help="threads per worker (>1: gthread workers, which keep connections alive)",
        )
        parser.add_argument("--claim-seconds", type=float, default=5.0, help="Per service-level run.")
        parser.add_argument("--skip-http", action="store_true")
        parser.add_argument("--skip-service", action="store_true", help="Skip the service-level claim rate.")
        parser.add_argument(
            "--url",
            help="Drive this server (http://127.0.0.1:PORT, on the same database) instead of starting gunicorn.",
        )
        parser.add_argument(
            "--server-pid",
            type=int,
            help="With --url: the server's main pid, for its CPU (children included).",
        )
        parser.add_argument(
            "--postgres-pid",
            type=int,
            help="Count only this PostgreSQL server's CPU (its postmaster pid), not every postgres process here.",
        )
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark rows afterwards.")
        parser.add_argument(
            "--latencies", help="Write every request's latency (JSON) here, for scripts/plot_latencies.py."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        self._postgres_pid: int | None = opts["postgres_pid"]
        result: dict[str, Any] = {
            "database": connection.vendor,
            "cpus": os.cpu_count(),
            "raters": opts["raters"],
            "overlap": opts["overlap"],
        }
        if connection.vendor != "postgresql":
            result["warning"] = "not PostgreSQL: figures are not comparable; set DATABASE_URL"
        tag = secrets.token_hex(3)
        created: list[Queue] = []
        try:
            if not opts["skip_http"]:
                queue, raters = self._setup(tag, opts["raters"], opts["judgments"], opts["overlap"])
                created.append(queue)
                result["http"] = self._http(
                    queue,
                    raters,
                    opts["judgments"],
                    opts["workers"],
                    opts["threads"],
                    opts["latencies"],
                    url=opts["url"],
                    server_pid=opts["server_pid"],
                )
                result["http"]["invariants"] = self._invariants(queue)
                result["http"]["queue_id"] = queue.pk
            result["service_claim_rate"] = {}
            for claimers in () if opts["skip_service"] else (1, 4, 8):
                queue, raters = self._setup(
                    f"{tag}-s{claimers}", claimers, 100_000, opts["overlap"], items=3000
                )
                created.append(queue)
                result["service_claim_rate"][str(claimers)] = self._service(
                    queue, raters, opts["claim_seconds"]
                )
                result["service_claim_rate"][str(claimers)]["invariants"] = self._invariants(queue)
        finally:
            if not opts["keep"]:
                self._cleanup(created, tag)
        self.stdout.write(json.dumps(result, indent=2))

    # -- data -----------------------------------------------------------------------------
    def _setup(
        self, tag: str, n_raters: int, judgments: int, overlap: int, items: int | None = None
    ) -> tuple[Queue, list[User]]:
        n_items = items or (judgments // overlap + n_raters * 2)
        rubric = Rubric.objects.create(name=f"bench-{tag}", version=1)
        generator, _ = Generator.objects.get_or_create(name="bench-model", defaults={"backend": "imported"})
        raters = [User(username=f"bench-{tag}-{i}", role=User.Role.RATER) for i in range(n_raters)]
        for user in raters:
            user.set_unusable_password()
        User.objects.bulk_create(raters)
        raters = list(User.objects.filter(username__startswith=f"bench-{tag}-").order_by("id"))
        queue = Queue.objects.create(name=f"bench-{tag}", rubric=rubric, overlap=overlap, lease_seconds=600)
        queue.members.add(*raters)
        prompts = [
            Prompt(
                messages=[{"role": "user", "content": f"bench {tag} question {i}"}],
                content_hash=messages_hash([{"role": "user", "content": f"bench {tag} question {i}"}]),
                collection=f"bench-{tag}",
            )
            for i in range(n_items)
        ]
        Prompt.objects.bulk_create(prompts, batch_size=2000)
        prompts = list(Prompt.objects.filter(collection=f"bench-{tag}").order_by("id"))
        candidates = [
            Candidate(prompt=p, generator=generator, sample_index=s, text=f"Answer {s} to {p.pk}. " * 20)
            for p in prompts
            for s in range(2)
        ]
        Candidate.objects.bulk_create(candidates, batch_size=2000)
        by_prompt: dict[int, list[int]] = {}
        for pid, cid in (
            Candidate.objects.filter(prompt__in=prompts).order_by("id").values_list("prompt_id", "id")
        ):
            by_prompt.setdefault(pid, []).append(cid)
        comparisons = [
            Comparison(prompt_id=pid, size=2, candidate_key=",".join(map(str, cids)))
            for pid, cids in by_prompt.items()
        ]
        Comparison.objects.bulk_create(comparisons, batch_size=2000)
        comp_ids = dict(Comparison.objects.filter(prompt__in=prompts).values_list("candidate_key", "id"))
        ComparisonCandidate.objects.bulk_create(
            [
                ComparisonCandidate(
                    comparison_id=comp_ids[",".join(map(str, cids))], candidate_id=cid, position=i
                )
                for cids in by_prompt.values()
                for i, cid in enumerate(cids)
            ],
            batch_size=4000,
        )
        QueueItem.objects.bulk_create(
            [QueueItem(queue=queue, comparison_id=c) for c in comp_ids.values()], batch_size=2000
        )
        return queue, raters

    def _cleanup(self, queues: list[Queue], tag: str) -> None:
        for queue in queues:
            rubric_id = queue.rubric_id
            Queue.objects.filter(pk=queue.pk).delete()
            Rubric.objects.filter(pk=rubric_id).delete()
        Prompt.objects.filter(collection__startswith=f"bench-{tag}").delete()
        User.objects.filter(username__startswith=f"bench-{tag}").delete()

    def _invariants(self, queue: Queue) -> dict[str, int]:
        over = QueueItem.objects.filter(queue=queue, is_gold=False).annotate(
            live=Count("assignments", filter=Q(assignments__status__in=["leased", "submitted"])),
            done=Count("assignments", filter=Q(assignments__status="submitted")),
        )
        pairs = Counter(Assignment.objects.filter(item__queue=queue).values_list("item_id", "rater_id"))
        return {
            "double_leases": over.filter(live__gt=queue.overlap).count(),
            "over_overlap": over.filter(done__gt=queue.overlap).count(),
            "rater_twice_on_item": sum(1 for n in pairs.values() if n > 1),
            "judgments": int(Assignment.objects.filter(item__queue=queue, status="submitted").count()),
        }

    # -- HTTP -----------------------------------------------------------------------------
    def _http(
        self,
        queue: Queue,
        raters: list[User],
        budget: int,
        workers: int,
        worker_threads: int,
        latencies_path: str | None = None,
        url: str | None = None,
        server_pid: int | None = None,
    ) -> dict[str, Any]:
        tokens = [api_key_create(user=u, name="bench_queue")[1] for u in raters]
        if url:
            external = urlsplit(url)
            return self._drive(
                queue, tokens, budget, external.hostname or "127.0.0.1", external.port or 80,
                [server_pid, *benchstats.children(server_pid)] if server_pid else [],
                latencies_path, {"server": url, "gunicorn_workers": None, "gunicorn_threads": None},
            )  # fmt: skip
        port = benchstats.free_port()
        env = {
            **os.environ,
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            # Production settings (DEBUG off), which refuse to start without a key from the
            # environment: a random one for this run (tokens are rows, nothing here is signed).
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "PREFLAB_LOG_LEVEL": "WARNING",
            # Raters with no think time ask ~10 times a second each: far past the per-user rate a
            # person never reaches (PREFLAB_NEXT_RATE). The throttle still runs, so its cost counts.
            "PREFLAB_NEXT_RATE": "100000/s",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "labeling.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
             "--log-level", "warning", "--keep-alive", "30", "--threads", str(worker_threads)],
            env=env, start_new_session=True,
        )  # fmt: skip
        try:
            benchstats.wait_for_server(port, server, timeout=60)
            return self._drive(
                queue, tokens, budget, "127.0.0.1", port, [server.pid, *benchstats.children(server.pid)],
                latencies_path, {"gunicorn_workers": workers, "gunicorn_threads": worker_threads},
            )  # fmt: skip
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)

    def _drive(
        self,
        queue: Queue,
        tokens: list[str],
        budget: int,
        host: str,
        port: int,
        pids: list[int],
        latencies_path: str | None,
        about: dict[str, Any],
    ) -> dict[str, Any]:
        """The raters' loops against the server at host:port; the figures as JSON."""
        self._warm(host, port, tokens[0], queue)
        postmaster = self._postgres_pid
        pg = [postmaster, *benchstats.children(postmaster)] if postmaster else benchstats.postgres_pids()
        reaped0 = benchstats.reaped_children_cpu_seconds(postmaster) if postmaster else 0.0
        cpu0, pg0, client0 = (
            benchstats.cpu_seconds(pids),
            benchstats.cpu_seconds(pg),
            benchstats.own_cpu_seconds(),
        )
        next_lat: list[float] = []
        submit_lat: list[float] = []
        counter: dict[str, Any] = {"judgments": 0, "errors": 0, "statuses": Counter()}
        lock = threading.Lock()
        stop = threading.Event()

        def rater_loop(token: str) -> None:
            conn = http.client.HTTPConnection(host, port, timeout=30)
            headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
            while not stop.is_set():
                t0 = time.perf_counter()
                conn.request("POST", f"/api/v1/queues/{queue.pk}/next/", body=b"{}", headers=headers)
                response = conn.getresponse()
                body = response.read()
                next_lat.append(time.perf_counter() - t0)
                if response.status == 204:
                    return
                if response.status != 201:
                    with lock:
                        counter["errors"] += 1
                        counter["statuses"][response.status] += 1
                    return
                assignment_id = json.loads(body)["id"]
                with lock:
                    if counter["judgments"] >= budget:
                        stop.set()
                        return
                    counter["judgments"] += 1
                t1 = time.perf_counter()
                conn.request(
                    "POST",
                    f"/api/v1/assignments/{assignment_id}/judgment/",
                    body=b'{"preference": -1}',
                    headers=headers,
                )
                response = conn.getresponse()
                response.read()
                submit_lat.append(time.perf_counter() - t1)
                if response.status != 201:
                    with lock:
                        counter["errors"] += 1
                        counter["statuses"][response.status] += 1

        elapsed = benchstats.run_raters([functools.partial(rater_loop, t) for t in tokens])
        cpu = benchstats.cpu_seconds(pids) - cpu0
        pg_cpu = benchstats.cpu_seconds(pg) - pg0
        if postmaster:
            # Backends that started during the run (PgBouncer opens them on demand), and those
            # that ended (reaped by the postmaster), count too.
            new = [pid for pid in benchstats.children(postmaster) if pid not in set(pg)]
            pg_cpu += benchstats.cpu_seconds(new)
            pg_cpu += benchstats.reaped_children_cpu_seconds(postmaster) - reaped0
        client_cpu = benchstats.own_cpu_seconds() - client0
        done = Assignment.objects.filter(item__queue=queue, status="submitted").count()
        if latencies_path:
            benchstats.write_latencies(
                latencies_path,
                system="Preflab",
                judgments_per_second=round(done / elapsed, 1),
                next_s=next_lat,
                submit_s=submit_lat,
            )
        return {
            **about,
            "raters": len(tokens),
            "judgments": done,
            "seconds": round(elapsed, 2),
            "judgments_per_second": round(done / elapsed, 1),
            "next_ms": benchstats.percentiles_ms(next_lat),
            "submit_ms": benchstats.percentiles_ms(submit_lat),
            "server_cpu_ms_per_judgment": round(cpu * 1000 / max(done, 1), 2) if pids else None,
            "postgres_cpu_ms_per_judgment": round(pg_cpu * 1000 / max(done, 1), 2) if pg else None,
            "client_cpu_ms_per_judgment": round(client_cpu * 1000 / max(done, 1), 2),
            "errors": counter["errors"],
            "error_statuses": dict(counter["statuses"]),
        }

    def _warm(self, host: str, port: int, token: str, queue: Queue) -> None:
        # Touch every worker once so imports and connections are not in the timings.
        for _ in range(12):
            conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request("GET", "/api/v1/queues/", headers={"Authorization": f"Token {token}"})
            conn.getresponse().read()
            conn.close()

    # -- service level --------------------------------------------------------------------
    def _service(self, queue: Queue, raters: list[User], seconds: float) -> dict[str, Any]:
        done = Counter[int]()
        errors: list[str] = []
        deadline = time.perf_counter() + seconds

        def loop(rater: User) -> None:
            try:
                while time.perf_counter() < deadline:
                    assignment = assignment_claim_next(rater=rater, queue=queue)
                    if assignment is None:
                        return
                    judgment_submit(assignment=assignment, preference=1)
                    done[rater.pk] += 1
            except Exception as exc:  # noqa: BLE001 - reported in the JSON
                errors.append(repr(exc))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=loop, args=(r,)) for r in raters]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        total = sum(done.values())
        return {
            "claims_and_submits": total,
            "seconds": round(elapsed, 2),
            "per_second": round(total / elapsed, 1),
            "errors": errors[:5],
        }
