"""``manage.py bench_interactive``: conversation turns over real HTTP, with a real worker and model.

Starts gunicorn (production settings) and a Celery worker for the ``interactive`` queue (solo pool,
prefetch 1, as production runs it) against the configured database, makes a throw-away
conversation template with the bundled model (K alternatives of ``--max-new-tokens`` tokens), and
has simulated trainers loop with no think time: send a message (``POST sessions/{id}/messages/``),
poll the session (``GET sessions/{id}/``) until the model's turn is ready, rank its alternatives
(``POST assignments/{id}/judgment/``), and again. Three runs: 1 trainer, N trainers, and N trainers
while a bulk generation job runs on the ``gpu`` queue in a worker of its own.

Prints JSON. Per run: the turn latency as the trainer sees it (message sent -> alternatives shown),
the server's own view of it (``requested_at`` -> ``ready_at``), the pickup (``requested_at`` ->
``claimed_at``: broker and worker), the runner's own time for the batch that made the turn
(``generation_ms``), the overhead ratio (latency / generation time, per turn) and how many turns
shared each model batch. The worker loads the model during a warm-up turn that is not counted.

Use a database of its own (``DATABASE_URL``): the workers it starts also take up any turn or
generation batch they find waiting there. With the filesystem broker, the processes it starts use
a temporary broker folder; with Redis, use a database number nothing else uses.
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
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from kombu import Connection
from kombu import Queue as KombuQueue

from comparisons.models import Prompt, messages_hash
from labeling import benchstats
from labeling.models import Queue, Rubric, Session, Turn, User
from labeling.services.api_keys import api_key_create
from labeling.services.session_templates import session_template_create
from model_runner.models import GenerationJob
from model_runner.services import generator_get_bundled

QUESTIONS = [
    "What is a good name for a grey cat?",
    "Explain in two sentences why the sky is blue.",
    "Give me three ideas for a rainy Sunday.",
    "How do I boil an egg so the yolk stays soft?",
    "What is the difference between weather and climate?",
    "Suggest a title for a short story about a lighthouse.",
    "Why do onions make people cry?",
    "How many legs does a spider have, and why?",
    "Write a haiku about the sea.",
    "What should I pack for a weekend hike?",
    "Tell me a fun fact about octopuses.",
    "How can I remember people's names better?",
]
FOLLOW_UPS = ["Tell me more.", "Can you say it more simply?", "Why is that?", "Give an example."]


def _pct(values: list[float], q: float, digits: int = 2) -> float:
    return round(float(np.percentile(values, q, method="nearest")), digits) if values else 0.0


class Command(BaseCommand):
    help = "Benchmark conversation turns over HTTP with a real interactive worker and model; prints JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--trainers", type=int, default=4, help="Trainers in the N-trainer runs.")
        parser.add_argument("--turns", type=int, default=6, help="Turns per trainer per run.")
        parser.add_argument("--alternatives", type=int, default=4, help="K: alternatives per turn.")
        parser.add_argument("--max-new-tokens", type=int, default=48)
        parser.add_argument(
            "--poll",
            type=float,
            default=0.25,
            help="Seconds between a trainer's polls of its session (at 0.1, 4 trainers' polls took "
            "about a third of a core of gunicorn here).",
        )
        parser.add_argument(
            "--broker",
            help="filesystem (a temporary folder) or a redis:// URL; default: the configured broker.",
        )
        parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes.")
        parser.add_argument(
            "--runs",
            default="1,n,bulk",
            help="Which runs, comma-separated: 1 (one trainer), n (N trainers), bulk (N with a bulk job).",
        )
        parser.add_argument("--bulk-prompts", type=int, default=96, help="Prompts of the bulk job.")
        parser.add_argument(
            "--turn-timeout", type=float, default=300, help="Seconds before a turn counts as lost."
        )
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark rows afterwards.")

    def handle(self, *args: Any, **opts: Any) -> None:
        runs = [r.strip() for r in opts["runs"].split(",") if r.strip()]
        if set(runs) - {"1", "n", "bulk"}:
            raise CommandError("--runs: a comma-separated list of 1, n and bulk")
        started = time.monotonic()
        tag = secrets.token_hex(3)
        broker = opts["broker"] or str(settings.CELERY_BROKER_URL)
        if broker.startswith("filesystem"):
            broker = "filesystem://"
        result: dict[str, Any] = {
            "database": connection.vendor,
            "broker": broker.split("://")[0],
            "cpus": os.cpu_count(),
            "model": "the bundled SmolLM2-135M-Instruct",
            "alternatives": opts["alternatives"],
            "max_new_tokens": opts["max_new_tokens"],
            "turns_per_trainer": opts["turns"],
            "trainers": opts["trainers"],
            "poll_s": opts["poll"],
            "gunicorn_workers": opts["workers"],
            "interactive_batch": settings.PREFLAB_INTERACTIVE_BATCH,
            "interactive_gather_ms": settings.PREFLAB_INTERACTIVE_GATHER_MS,
        }
        with tempfile.TemporaryDirectory(prefix="bench-interactive-") as tmp:
            self.tmp = Path(tmp)
            self.env = self._env(broker)
            self.broker = broker
            created: dict[str, Any] = {"tag": tag}
            processes: list[subprocess.Popen[bytes]] = []
            try:
                queue, trainers, admin = self._setup(tag, opts, created)
                tokens = {
                    u.pk: api_key_create(user=u, name="bench_interactive")[1] for u in [*trainers, admin]
                }
                self.port = benchstats.free_port()
                self.web = self._gunicorn(opts["workers"])
                processes.append(self.web)
                self.interactive = self._worker("interactive", f"bench-interactive-{tag}")
                processes.append(self.interactive)
                benchstats.wait_for_server(self.port, processes[0], timeout=60)
                self._wait_ready("interactive", processes[1])
                warm = self._trainers(queue, trainers[:1], {trainers[0].pk: tokens[trainers[0].pk]}, 1, opts)
                result["warm_up_turn_ms"] = warm["latency_ms"]["max"]
                result["runs"] = {}
                n = opts["trainers"]
                for run in runs:
                    if run == "1":
                        result["runs"]["1_trainer"] = self._trainers(
                            queue, trainers[:1], tokens, opts["turns"], opts
                        )
                    elif run == "n":
                        result["runs"][f"{n}_trainers"] = self._trainers(
                            queue, trainers[:n], tokens, opts["turns"], opts
                        )
                    else:
                        result["runs"][f"{n}_trainers_with_a_bulk_job"] = self._with_bulk_job(
                            queue, trainers[:n], tokens, admin, opts, processes, created
                        )
            finally:
                for process in processes:
                    _stop(process)
                self._purge()
                if not opts["keep"]:
                    self._cleanup(created)
        result.update(_summary(result.get("runs", {}), opts["trainers"]))
        result["seconds"] = round(time.monotonic() - started, 1)
        self.stdout.write(json.dumps(result, indent=2))

    # -- processes ------------------------------------------------------------------------
    def _env(self, broker: str) -> dict[str, str]:
        db = settings.DATABASES["default"]
        database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{db['NAME']}"
        return {
            **os.environ,
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            # Production settings refuse to start without a key from the environment: a random one
            # for this run (API keys are rows, nothing here is signed).
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "PREFLAB_LOG_LEVEL": "WARNING",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker,
            # A var folder of the run's own: its filesystem broker folders (nothing else's tasks).
            "PREFLAB_VAR_DIR": str(self.tmp / "var"),
            "PREFLAB_MODEL_CACHE": str(settings.PREFLAB_MODEL_CACHE),
        }

    def _gunicorn(self, workers: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "labeling.wsgi", "-b", f"127.0.0.1:{self.port}",
             "-w", str(workers), "--log-level", "warning", "--keep-alive", "30"],
            env=self.env, start_new_session=True,
        )  # fmt: skip

    def _worker(self, queue: str, name: str) -> subprocess.Popen[bytes]:
        """A worker as production runs one per queue: solo pool, one task at a time, prefetch 1."""
        log = self.tmp / f"worker-{queue}.log"
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "labeling", "worker", "-Q", queue,
             "--pool", "solo", "--concurrency", "1", "--prefetch-multiplier", "1", "-n", f"{name}@%h",
             "--loglevel", "INFO", "--logfile", str(log)],
            env=self.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def _wait_ready(self, queue: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
        log = self.tmp / f"worker-{queue}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CommandError(f"the {queue} worker exited; its log:\n{_tail(log)}")
            if log.exists() and " ready." in log.read_text():
                return
            time.sleep(0.2)
        raise CommandError(f"the {queue} worker did not start; its log:\n{_tail(log)}")

    def _purge(self) -> None:
        """Drop what the run leaves queued (a cancelled job's batches) from the broker."""
        if self.broker.startswith("filesystem"):
            return  # the temporary folder goes away with the run
        try:
            with Connection(self.broker) as conn:
                for name in ("gpu", "interactive"):
                    KombuQueue(name).bind(conn.default_channel).purge()
        except Exception as exc:  # noqa: BLE001 - best effort; reported
            self.stderr.write(f"could not purge the broker's queues: {exc}")

    # -- data -----------------------------------------------------------------------------
    def _setup(
        self, tag: str, opts: dict[str, Any], created: dict[str, Any]
    ) -> tuple[Queue, list[User], User]:
        users = [User(username=f"bench-{tag}-{i}", role=User.Role.RATER) for i in range(opts["trainers"])]
        users.append(User(username=f"bench-{tag}-admin", role=User.Role.ADMIN))
        for user in users:
            user.set_unusable_password()
        User.objects.bulk_create(users)
        users = list(User.objects.filter(username__startswith=f"bench-{tag}-").order_by("id"))
        trainers = [u for u in users if u.role == User.Role.RATER]
        admin = next(u for u in users if u.role == User.Role.ADMIN)
        rubric = Rubric.objects.create(name=f"bench-interactive-{tag}", version=1)
        created["rubric"] = rubric.pk
        queue = session_template_create(
            name=f"bench-interactive-{tag}",
            rubric=rubric,
            generators=[generator_get_bundled()],
            alternatives=opts["alternatives"],
            max_turns=max(opts["turns"], 1),
            # The run's tag makes every conversation a prompt of its own (removed afterwards).
            system_prompt=f"You are a helpful assistant. Answer briefly. (Benchmark run {tag}.)",
            sampling={"max_new_tokens": opts["max_new_tokens"]},
            members=trainers,
        )
        created["queue"] = queue.pk
        return queue, trainers, admin

    def _cleanup(self, created: dict[str, Any]) -> None:
        tag = created["tag"]
        queue_id = created.get("queue")
        if queue_id is not None:
            turns = Turn.objects.filter(session__queue_id=queue_id)
            turns.update(parent=None)  # turns protect their parents; they all go
            turns.delete()
            Session.objects.filter(queue_id=queue_id).delete()
            Queue.objects.filter(pk=queue_id).delete()  # its template, items, leases and judgments
            Prompt.objects.filter(collection=f"conversation-{queue_id}").delete()  # with the candidates
        if created.get("job"):
            GenerationJob.objects.filter(pk=created["job"]).delete()
        Prompt.objects.filter(collection=f"bench-interactive-{tag}-bulk").delete()
        if created.get("rubric"):
            Rubric.objects.filter(pk=created["rubric"]).delete()
        User.objects.filter(username__startswith=f"bench-{tag}-").delete()

    # -- trainers -------------------------------------------------------------------------
    def _request(
        self, conn: http.client.HTTPConnection, method: str, path: str, token: str, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        conn.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

    def _trainers(
        self, queue: Queue, trainers: list[User], tokens: dict[int, str], turns: int, opts: dict[str, Any]
    ) -> dict[str, Any]:
        """Each trainer opens a session and talks for ``turns`` turns; every trainer at once."""
        records: list[dict[str, Any]] = []
        errors: list[str] = []
        lock = threading.Lock()

        def loop(index: int, trainer: User) -> None:
            token = tokens[trainer.pk]
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                status, session = self._request(conn, "POST", "/api/v1/sessions/", token, {"queue": queue.pk})
                if status != 201:
                    raise RuntimeError(f"session: {status} {session}")
                for j in range(turns):
                    text = QUESTIONS[(index * 5 + j) % len(QUESTIONS)] if j % 2 == 0 else FOLLOW_UPS[j % 4]
                    record = self._turn(conn, token, session["id"], text, opts)
                    record["trainer"] = index
                    with lock:
                        records.append(record)
                    if record["status"] != "ready":
                        raise RuntimeError(f"turn {record['turn']} ended {record['status']}")
                status, body = self._request(conn, "POST", f"/api/v1/sessions/{session['id']}/finish/", token)
                if status != 200:
                    raise RuntimeError(f"finish: {status} {body}")
            except Exception as exc:  # noqa: BLE001 - reported in the JSON
                with lock:
                    errors.append(f"trainer {index}: {exc}")
            finally:
                conn.close()

        web = [self.web.pid, *benchstats.children(self.web.pid)]
        cpu0 = {"web": benchstats.cpu_seconds(web), "worker": benchstats.cpu_seconds([self.interactive.pid])}
        elapsed = benchstats.run_raters([functools.partial(loop, i, t) for i, t in enumerate(trainers)])
        figures = _run_figures(records, errors, elapsed, len(trainers))
        # CPU seconds per turn: gunicorn (messages, polls, rankings) and the interactive worker.
        figures["cpu_s_per_turn"] = {
            "web": round((benchstats.cpu_seconds(web) - cpu0["web"]) / max(figures["turns"], 1), 2),
            "interactive_worker": round(
                (benchstats.cpu_seconds([self.interactive.pid]) - cpu0["worker"]) / max(figures["turns"], 1),
                2,
            ),
        }
        return figures

    def _turn(
        self, conn: http.client.HTTPConnection, token: str, session_id: int, text: str, opts: dict[str, Any]
    ) -> dict[str, Any]:
        """Send, poll until the alternatives are shown, rank them (best first, no ties)."""
        sent = time.perf_counter()
        status, body = self._request(
            conn, "POST", f"/api/v1/sessions/{session_id}/messages/", token, {"text": text}
        )
        if status != 202:
            raise RuntimeError(f"message: {status} {body}")
        turn = body["turns"][-1]
        polls = 0
        while turn["status"] in ("pending", "generating"):
            if time.perf_counter() - sent > opts["turn_timeout"]:
                break
            time.sleep(opts["poll"])
            status, body = self._request(conn, "GET", f"/api/v1/sessions/{session_id}/", token)
            polls += 1
            turn = body["turns"][-1]
        latency = time.perf_counter() - sent
        if turn["status"] == "ready":
            ranking = [[a["label"]] for a in turn["alternatives"]]
            status, body = self._request(
                conn,
                "POST",
                f"/api/v1/assignments/{turn['assignment']}/judgment/",
                token,
                {"ranking": ranking},
            )
            if status != 201:
                raise RuntimeError(f"judgment: {status} {body}")
        return {"turn": turn["id"], "status": turn["status"], "latency_s": latency, "polls": polls}

    # -- the bulk job ---------------------------------------------------------------------
    def _with_bulk_job(
        self,
        queue: Queue,
        trainers: list[User],
        tokens: dict[int, str],
        admin: User,
        opts: dict[str, Any],
        processes: list[subprocess.Popen[bytes]],
        created: dict[str, Any],
    ) -> dict[str, Any]:
        """The N-trainer run while a bulk generation job (the same model, started through the API)
        keeps a ``gpu`` worker of its own busy; the job is cancelled afterwards."""
        tag = created["tag"]
        collection = f"bench-interactive-{tag}-bulk"
        prompts = []
        for i in range(opts["bulk_prompts"]):
            messages = [{"role": "user", "content": f"{QUESTIONS[i % len(QUESTIONS)]} (bulk {tag} #{i})"}]
            prompts.append(
                Prompt(messages=messages, content_hash=messages_hash(messages), collection=collection)
            )
        Prompt.objects.bulk_create(prompts)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        status, job = self._request(
            conn,
            "POST",
            "/api/v1/generation-jobs/",
            tokens[admin.pk],
            {
                "collection": collection,
                "samples_per_prompt": 4,
                "sampling": {"max_new_tokens": 64},
                "batch_size": 8,
            },
        )
        if status != 201:
            raise CommandError(f"bulk job: {status} {job}")
        job_id = created["job"] = job["id"]
        gpu = self._worker("gpu", f"bench-gpu-{tag}")
        processes.append(gpu)
        self._wait_ready("gpu", gpu)
        deadline = time.monotonic() + 120
        while GenerationJob.objects.get(pk=job_id).status == GenerationJob.Status.QUEUED:
            if time.monotonic() > deadline:
                raise CommandError("the bulk job did not start")
            time.sleep(0.2)
        time.sleep(2)  # well into its first batch
        before = GenerationJob.objects.get(pk=job_id)
        figures = self._trainers(queue, trainers, tokens, opts["turns"], opts)
        after = GenerationJob.objects.get(pk=job_id)
        figures["bulk_job"] = {
            "status_during_run": str(after.status),
            "candidates_written_during_run": after.done - before.done,
            "sequences_per_batch": 8 * 4,
            "max_new_tokens": 64,
        }
        self._request(conn, "POST", f"/api/v1/generation-jobs/{job_id}/cancel/", tokens[admin.pk])
        conn.close()
        _stop(gpu, kill=True)  # mid-batch; its job is cancelled
        return figures


def _stop(process: subprocess.Popen[bytes], kill: bool = False) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else "(no log)"


def _run_figures(
    records: list[dict[str, Any]], errors: list[str], elapsed: float, trainers: int
) -> dict[str, Any]:
    """The client's records joined with the turns' own timestamps."""
    rows = {
        t.pk: t
        for t in Turn.objects.filter(pk__in=[r["turn"] for r in records]).only(
            "pk", "requested_at", "claimed_at", "ready_at", "generation_ms", "attempts"
        )
    }
    latency, server, pickup, generation, ratio, polls = [], [], [], [], [], []
    batches: Counter[Any] = Counter()
    for record in records:
        turn = rows.get(record["turn"])
        if turn is None or record["status"] != "ready" or not turn.generation_ms:
            continue
        assert turn.requested_at and turn.claimed_at and turn.ready_at
        latency.append(record["latency_s"])
        server.append((turn.ready_at - turn.requested_at).total_seconds())
        pickup.append((turn.claimed_at - turn.requested_at).total_seconds())
        generation.append(turn.generation_ms / 1000)
        ratio.append(record["latency_s"] * 1000 / turn.generation_ms)
        polls.append(record["polls"])
        batches[turn.claimed_at] += 1  # turns claimed together share one timestamp: one batch
    sizes = Counter(batches.values())
    return {
        "trainers": trainers,
        "turns": len(latency),
        "seconds": round(elapsed, 1),
        "latency_ms": {**benchstats.percentiles_ms(latency), "max": round(max(latency, default=0) * 1000, 1)},
        "server_ms": benchstats.percentiles_ms(server),
        "pickup_ms": benchstats.percentiles_ms(pickup),
        "generation_ms": benchstats.percentiles_ms(generation),
        "overhead_ratio": {
            "p50": _pct(ratio, 50),
            "p95": _pct(ratio, 95),
            "max": round(max(ratio, default=0), 2),
        },
        "polls_per_turn": round(sum(polls) / max(len(polls), 1), 1),
        "batches": len(batches),
        "turns_per_batch": {str(k): v for k, v in sorted(sizes.items())},
        "errors": errors[:5],
    }


def _summary(runs: dict[str, Any], n: int) -> dict[str, Any]:
    """The headline figures and the two targets (1 trainer's overhead; N trainers' p95 against
    1 trainer's p50)."""
    one = runs.get("1_trainer")
    many = runs.get(f"{n}_trainers")
    summary: dict[str, Any] = {}
    if one:
        summary["overhead_ratio_p50"] = one["overhead_ratio"]["p50"]
        summary["latency_p50_ms"] = one["latency_ms"]["p50"]
        summary["latency_p95_ms"] = one["latency_ms"]["p95"]
    if many:
        summary[f"latency_p50_ms_{n}_trainers"] = many["latency_ms"]["p50"]
        summary[f"latency_p95_ms_{n}_trainers"] = many["latency_ms"]["p95"]
    targets: dict[str, Any] = {}
    if one:
        targets["overhead_ratio_p50_1_trainer"] = {
            "value": one["overhead_ratio"]["p50"],
            "target": "<= 1.25",
            "met": one["overhead_ratio"]["p50"] <= 1.25,
        }
    if one and many and one["latency_ms"]["p50"]:
        factor = round(many["latency_ms"]["p95"] / one["latency_ms"]["p50"], 2)
        targets[f"latency_p95_{n}_trainers_over_p50_1_trainer"] = {
            "value": factor,
            "target": "<= 3",
            "met": factor <= 3,
        }
    summary["targets"] = targets
    return summary
