"""Raters judging over HTTP while PostgreSQL restarts; prints JSON.

Run by ``scripts/fault_postgres_restart.sh``, which starts a private PostgreSQL and gunicorn (4
workers, production settings) on it and sets the environment (``scripts/fault_lib.sh``). It makes a
throw-away queue (as ``manage.py bench_queue`` does) and has ``--raters`` simulated raters loop
``next`` -> ``judgment`` against ``--url`` with no think time. After ``--before`` seconds it restarts
PostgreSQL (``pg_ctl stop -m fast``, down ``--down-seconds``, start), then lets the raters go on for
``--after`` seconds. A rater that gets ``503`` waits and sends the same request again (a judgment
is idempotent); one that loses its connection reconnects.

Checks (exit 1 if any fails):

- no 5xx other than 503, and every 503 carries ``Retry-After``;
- nothing acknowledged is lost: every judgment answered ``201`` (or ``200``, a replay) is in the
  database afterwards;
- it recovers by itself: requests succeed again after PostgreSQL is back (seconds to the first
  success reported), and the run ends with successes;
- the queue's invariants hold (no double lease, nothing over its overlap) and ``check_integrity``
  finds no drift.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

from labeling.management.commands.bench_queue import Command as BenchQueue  # noqa: E402
from labeling.models import Judgment  # noqa: E402
from labeling.services.api_keys import api_key_create  # noqa: E402


def _log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")


class Tally:
    """What the raters saw, shared by their threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.connection_errors = 0
        self.unavailable_without_retry_after = 0
        self.acknowledged: list[int] = []
        self.successes: list[float] = []  # monotonic times of 2xx answers

    def saw(self, status: int, retry_after: str | None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status == 503 and not retry_after:
                self.unavailable_without_retry_after += 1
            if 200 <= status < 300:
                self.successes.append(time.monotonic())


def _request(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str], tally: Tally
) -> tuple[int, bytes]:
    """POST until the answer is not 503 and the connection holds (a 503 or a lost connection is
    sent again after a short wait: what a client honouring Retry-After does, sooner)."""
    while True:
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            with tally.lock:
                tally.connection_errors += 1
            conn.close()
            time.sleep(0.3)
            continue
        tally.saw(response.status, response.getheader("Retry-After"))
        if response.status == 503:
            time.sleep(0.5)
            continue
        return response.status, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--raters", type=int, default=16)
    parser.add_argument("--judgments", type=int, default=12000, help="queue size: judgments it can take")
    parser.add_argument("--before", type=float, default=8.0)
    parser.add_argument("--down-seconds", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=12.0)
    opts = parser.parse_args()

    bench = BenchQueue()
    tag = f"fault-{int(time.time())}"
    queue, raters = bench._setup(tag, opts.raters, opts.judgments, 2)
    tokens = [api_key_create(user=u, name="fault_rating")[1] for u in raters]
    connections.close_all()  # PostgreSQL will go away under this process too
    target = urlsplit(opts.url)
    tally = Tally()
    stop = threading.Event()

    def rater(token: str) -> None:
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80, timeout=30)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        while not stop.is_set():
            status, body = _request(conn, f"/api/v1/queues/{queue.pk}/next/", b"{}", headers, tally)
            if status == 204:
                return
            if status != 201:
                time.sleep(0.2)
                continue
            assignment_id = json.loads(body)["id"]
            status, _ = _request(
                conn, f"/api/v1/assignments/{assignment_id}/judgment/", b'{"preference": 1}', headers, tally
            )
            if status in (200, 201):
                with tally.lock:
                    tally.acknowledged.append(assignment_id)

    threads = [threading.Thread(target=rater, args=(t,), daemon=True) for t in tokens]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(opts.before)
    acknowledged_before = len(tally.acknowledged)
    down_at = time.monotonic()
    _log("stopping PostgreSQL (fast shutdown)")
    subprocess.run(["bash", "-c", "source scripts/fault_lib.sh; fault_pg_stop fast"], cwd=ROOT, check=True)
    stopped_at = time.monotonic()
    time.sleep(opts.down_seconds)
    subprocess.run(["bash", "-c", "source scripts/fault_lib.sh; fault_pg_start"], cwd=ROOT, check=True)
    back_at = time.monotonic()
    _log(f"PostgreSQL is back after {back_at - down_at:.1f} s")
    time.sleep(opts.after)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - started

    connections.close_all()
    acknowledged = set(tally.acknowledged)
    stored = set(
        Judgment.objects.filter(assignment_id__in=acknowledged).values_list("assignment_id", flat=True)
    )
    invariants = bench._invariants(queue)
    try:
        call_command("check_integrity", "--queue", str(queue.pk), stdout=open(os.devnull, "w"))
        integrity_ok = True
    except SystemExit as exc:
        integrity_ok = exc.code in (0, None)
    after_back = [t for t in tally.successes if t > back_at]
    first_success_after = round(min(after_back) - back_at, 2) if after_back else None
    server_errors = {s: n for s, n in tally.statuses.items() if s >= 500 and s != 503}
    result: dict[str, Any] = {
        "scenario": "postgres_restart",
        "raters": opts.raters,
        "seconds": round(elapsed, 1),
        "postgres": {
            "stopped_at_s": round(down_at - started, 1),
            "stop_took_s": round(stopped_at - down_at, 1),
            "back_at_s": round(back_at - started, 1),
            "down_s": round(back_at - down_at, 1),
        },
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "unavailable_503": tally.statuses[503],
        "unavailable_without_retry_after": tally.unavailable_without_retry_after,
        "server_errors_other_than_503": server_errors,
        "connection_errors": tally.connection_errors,
        "acknowledged_judgments": len(acknowledged),
        "acknowledged_before_restart": acknowledged_before,
        "acknowledged_after_back": len(acknowledged) - acknowledged_before,
        "acknowledged_missing_in_db": len(acknowledged - stored),
        "first_success_after_back_s": first_success_after,
        "successes_after_back": len(after_back),
        "invariants": invariants,
        "check_integrity_ok": integrity_ok,
    }
    ok = (
        not server_errors
        and tally.unavailable_without_retry_after == 0
        and not (acknowledged - stored)
        and len(after_back) > 0
        and invariants["double_leases"]
        == invariants["over_overlap"]
        == invariants["rater_twice_on_item"]
        == 0
        and integrity_ok
        and acknowledged_before > 0
    )
    result["ok"] = ok
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
