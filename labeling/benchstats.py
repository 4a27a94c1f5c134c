"""What the queue benchmarks measure, one method for both: ``manage.py bench_queue`` (Preflab) and
``scripts/bench_label_studio.py`` (Label Studio, driven the same way).

CPU is read with psutil (user + system time of the server's processes and of the PostgreSQL
processes), latency percentiles are nearest-rank in milliseconds (numpy), and every request's
latency can be written out for ``scripts/plot_latencies.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of latencies given in seconds, in ms; 0 when empty."""
    if not seconds:
        return 0.0
    return round(float(np.percentile(seconds, q, method="nearest")) * 1000, 2)


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    return {
        "p50": percentile_ms(seconds, 50),
        "p95": percentile_ms(seconds, 95),
        "p99": percentile_ms(seconds, 99),
    }


def _cpu_times(pid: int) -> Any:
    """The process's CPU times, or None once it is gone."""
    try:
        return psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (those still alive)."""
    times = [t for t in map(_cpu_times, pids) if t is not None]
    return sum(t.user + t.system for t in times)


def reaped_children_cpu_seconds(pid: int) -> float:
    """CPU of the children that ``pid`` has waited for (e.g. exited backends)."""
    times = _cpu_times(pid)
    return 0.0 if times is None else times.children_user + times.children_system


def own_cpu_seconds() -> float:
    """CPU time of this process (all its threads): the simulated raters' share of the machine."""
    times = os.times()
    return times.user + times.system


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine (postmaster, backends, background workers)."""
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in {"postgres", "postmaster"}]


def postmaster_pids(pg_pids: list[int]) -> list[int]:
    """The PostgreSQL processes whose parent is not a PostgreSQL process."""
    members = set(pg_pids)
    result = []
    for pid in pg_pids:
        try:
            if psutil.Process(pid).ppid() not in members:
                result.append(pid)
        except psutil.NoSuchProcess:
            continue
    return result


def run_raters(loops: list[Callable[[], None]]) -> float:
    """Run each simulated rater's loop in its own thread, all at once; the wall seconds taken."""
    threads = [threading.Thread(target=loop) for loop in loops]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, for the server under test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_server(port: int, server: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Wait until the server accepts connections; fail early if its process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def write_latencies(
    path: str | Path, *, system: str, judgments_per_second: float, next_s: list[float], submit_s: list[float]
) -> None:
    """Every request's latency in ms, the file ``scripts/plot_latencies.py`` draws."""
    body = {
        "system": system,
        "judgments_per_second": judgments_per_second,
        "next_ms": [round(x * 1000, 3) for x in next_s],
        "submit_ms": [round(x * 1000, 3) for x in submit_s],
    }
    Path(path).write_text(json.dumps(body), encoding="utf-8")
