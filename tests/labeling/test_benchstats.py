"""The queue benchmarks' measurements (labeling.benchstats): nearest-rank percentiles and CPU
accounting of a process tree."""

from __future__ import annotations

import subprocess
import sys

from labeling import benchstats


def test_percentiles_are_nearest_rank_in_ms():
    seconds = [i / 1000 for i in range(1, 101)]  # 1..100 ms; the rank is round(q% x 99), half to even
    assert benchstats.percentiles_ms(seconds) == {"p50": 51.0, "p95": 95.0, "p99": 99.0}
    assert benchstats.percentile_ms([0.0123], 99) == 12.3
    assert benchstats.percentile_ms([], 50) == 0.0


def test_cpu_and_children_of_a_process_tree():
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(30)']); print(c.pid, flush=True); sum(range(10**7)); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        child = int(parent.stdout.readline())
        assert benchstats.children(parent.pid) == [child]
        assert benchstats.cpu_seconds([parent.pid]) > 0
        assert benchstats.cpu_seconds([2**22 + 12345]) == 0.0  # gone processes count nothing
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
    assert benchstats.own_cpu_seconds() > 0
