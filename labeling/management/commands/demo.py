"""``manage.py demo``: the whole loop on one machine, with no external server.

Migrates the SQLite database, seeds the demo, starts two Celery workers on the embedded
filesystem broker (one for ``default`` and ``gpu``, with beat for lease expiry; one for
``interactive``, the conversation turns, so a turn never waits behind a generation batch),
generates 4 candidates per demo prompt with the bundled model (progress bar), builds the pairwise
queue and the conversation template, and serves the UI. A second run reuses everything that
exists. Debug is on for the demo (``manage.py`` sets ``DJANGO_DEBUG=1`` for this command unless
the variable is set), and the command says so.

The workers live exactly as long as the command: Ctrl-C, SIGTERM or a closed terminal (SIGHUP) stop
them too, and workers that an earlier run left behind (its command was SIGKILLed) are stopped before
new ones start, so two demos' workers never share the embedded broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from comparisons.models import Candidate

#: The demo's workers: name (of its pidfile and log under var/), queues, and its own arguments.
#: Each keeps its models loaded; the interactive one takes one turn batch at a time (solo pool).
WORKERS = (
    ("worker", "default,gpu", ["-B", "--schedule", "{var}/celerybeat-schedule"]),
    ("worker-interactive", "interactive", ["--prefetch-multiplier", "1", "-n", "interactive@%h"]),
)


class Command(BaseCommand):
    help = "Seed the demo, generate candidates with the bundled model, build a queue and serve the UI."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--samples", type=int, default=4)
        parser.add_argument("--max-new-tokens", type=int, default=160)
        parser.add_argument("--no-serve", action="store_true", help="Stop after building the queue.")

    def handle(self, *args: Any, **opts: Any) -> None:
        from labeling.demo import demo_conversation, demo_logins, demo_queue, demo_seed
        from model_runner.selectors import generation_job_wait
        from model_runner.services import generation_job_create, generator_get_bundled

        if settings.DEBUG:
            # manage.py turns debug on for the demo (unless DJANGO_DEBUG is set): say so.
            self.stdout.write(
                "Debug mode is on for the demo (DJANGO_DEBUG=1): error pages show the settings, "
                "so keep it on this machine. Production runs with DJANGO_DEBUG off (docs/operations.md)."
            )
        else:
            self.stdout.write(
                self.style.WARNING(
                    "Debug mode is off (DJANGO_DEBUG=0): the development server then serves no static "
                    "files and sends cookies over HTTPS only. Unset DJANGO_DEBUG to run the demo."
                )
            )
        self.stdout.write("Migrating the database ...")
        call_command("migrate", interactive=False, verbosity=0)
        users, rubric, prompts = demo_seed()
        raters = [u for u in users if u.role == "rater"]
        self.stdout.write(f"Demo data: {len(users)} accounts, rubric '{rubric}', {len(prompts)} prompts.")

        # SIGTERM and SIGHUP unwind like Ctrl-C, through the finally below that stops the workers.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _exit_on_signal)
        for name, _, _ in WORKERS:
            self._stop_orphan(settings.VAR_DIR / f"{name}.pid")
        workers: list[subprocess.Popen[bytes]] = []
        try:
            for name, queues, extra in WORKERS:
                workers.append(self._start_worker(name, queues, extra))
            worker = workers[0]
            generator = generator_get_bundled()
            k = opts["samples"]
            have = Candidate.objects.filter(
                prompt__in=prompts, generator=generator, sample_index__lt=k
            ).count()
            if have < len(prompts) * k:
                self.stdout.write(
                    f"Generating {len(prompts) * k - have} candidates with {generator.name} in the worker "
                    "(the first run converts the bundled model once, about 20 s) ..."
                )
                job = generation_job_create(
                    prompts=prompts,
                    generators=[generator],
                    samples_per_prompt=k,
                    sampling={"max_new_tokens": opts["max_new_tokens"]},
                    # 8 prompts x 4 samples per batch: batched enough to be fast on a CPU, small
                    # enough that the progress bar moves every few seconds.
                    batch_size=8,
                )
                job = self._wait(job, generation_job_wait, worker)
                if job.status != "succeeded":
                    raise CommandError(f"Generation job {job.pk} ended {job.status}: {job.errors}")
            else:
                self.stdout.write(f"Reusing {have} candidates already generated.")
            queue = demo_queue(rubric=rubric, prompts=prompts, raters=raters)
            self.stdout.write(
                f"Queue '{queue.name}': {queue.items.count()} pairwise comparisons, overlap {queue.overlap}."
            )
            chat = demo_conversation(raters=raters)
            self.stdout.write(
                f"Conversation template '{chat.name}': {chat.template.alternatives} alternatives a turn "
                f"from {generator.name}, answered by the interactive worker."
            )
            logins = demo_logins()
            url = f"http://{opts['addrport']}/"
            self.stdout.write(self.style.SUCCESS(f"\nPreflab is running at {url}"))
            for user in users:
                self.stdout.write(f"  {user.role:<10} {user.username:<11} password: {logins[user.username]}")
            self.stdout.write(
                f"  Raters judge at {url}rate/ and chat with the model, ranking its replies, at {url}chat/"
            )
            self.stdout.write(
                f"  Admins import, generate and build queues at {url}manage/import/, "
                f"{url}manage/generation/ and {url}manage/queues/; researchers export at {url}export/"
            )
            self.stdout.write(
                f"  API docs: {url}api/docs/   (logins are kept in {settings.VAR_DIR}/demo_logins.json)\n"
            )
            if not opts["no_serve"]:
                call_command("runserver", opts["addrport"], use_reloader=False)
        finally:
            self._stop_workers(workers)

    def _start_worker(self, name: str, queues: str, extra: list[str]) -> subprocess.Popen[bytes]:
        var = settings.VAR_DIR
        log = var / f"{name}.log"
        cmd = [
            sys.executable, "-m", "celery", "-A", "labeling", "worker",
            "-Q", queues, "--pool", "solo", "--concurrency", "1",
            *(arg.format(var=var) for arg in extra),
            "--loglevel", "INFO", "--logfile", str(log), "--pidfile", str(var / f"{name}.pid"),
        ]  # fmt: skip
        self.stdout.write(f"Starting a Celery worker for {queues} (log: {log}) ...")
        with open(var / f"{name}.out", "ab") as out:
            return subprocess.Popen(
                cmd, env=os.environ.copy(), start_new_session=True, stdout=out, stderr=subprocess.STDOUT
            )

    def _stop_workers(self, workers: list[subprocess.Popen[bytes]]) -> None:
        running = [w for w in workers if w.poll() is None]
        for worker in running:
            os.killpg(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for worker in running:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)

    def _stop_orphan(self, pidfile: Path) -> None:
        """Stop the worker an earlier demo left running (its pidfile names it), if it still runs."""
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if not _is_our_worker(pid, pidfile):
            return  # gone, or the pid was reused by something else: celery clears a stale pidfile
        parent = _demo_parent(pid)
        if parent is not None:
            raise CommandError(
                f"Another demo is running (pid {parent}) with this var/ folder; stop it first (Ctrl-C there)."
            )
        self.stdout.write(f"Stopping a worker left running by an earlier demo (pid {pid}) ...")
        try:
            os.killpg(pid, signal.SIGTERM)  # it leads its own process group (start_new_session)
            deadline = time.monotonic() + 20
            while _is_our_worker(pid, pidfile) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _is_our_worker(pid, pidfile):
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _wait(self, job: Any, wait: Any, worker: subprocess.Popen[bytes]) -> Any:
        from tqdm import tqdm

        bar = tqdm(total=job.total, unit="cand", desc="generating", file=sys.stderr, dynamic_ncols=True)
        started = time.monotonic()

        def on_progress(current: Any) -> None:
            if worker.poll() is not None:
                raise CommandError(f"The worker exited (code {worker.returncode}); see var/worker.log")
            bar.n = current.done
            rate = current.completion_tokens / current.generation_seconds if current.generation_seconds else 0
            bar.set_postfix_str(f"{rate:.0f} tok/s, {time.monotonic() - started:.0f}s")
            bar.refresh()

        try:
            return wait(job=job, on_progress=on_progress)
        finally:
            bar.close()


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _is_our_worker(pid: int, pidfile: Path) -> bool:
    """Whether ``pid`` runs and is this var folder's demo worker (its command line names the pidfile)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not ours
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (macOS): trust the pidfile
    try:
        return str(pidfile).encode() in cmdline.read_bytes()
    except OSError:
        return False


def _demo_parent(pid: int) -> int | None:
    """The pid of the ``manage.py demo`` that started worker ``pid``, if that command still runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
        parent = Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return ppid if b"demo" in parent and any(arg.endswith(b"manage.py") for arg in parent) else None
