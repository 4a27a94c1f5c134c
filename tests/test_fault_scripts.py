"""The fault drills and the PgBouncer benchmark (scripts/fault_*.sh, scripts/faults.sh,
scripts/bench_gunicorn_pgbouncer.sh): well-formed, all wired into faults.sh and CI; and
``bench_queue --url``, which the PgBouncer benchmark uses, driving a server it did not start.
The drills themselves start servers and take minutes: CI runs them (`bash scripts/faults.sh`)."""

from __future__ import annotations

import json
import re
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def _shell_scripts() -> list[Path]:
    return sorted([*SCRIPTS.glob("fault*.sh"), SCRIPTS / "bench_gunicorn_pgbouncer.sh"])


@pytest.mark.parametrize("script", _shell_scripts(), ids=lambda p: p.name)
def test_the_script_parses(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_scenario_is_run_by_faults_sh_and_faults_sh_by_ci():
    scenarios = {
        p.stem.removeprefix("fault_") for p in SCRIPTS.glob("fault_*.sh") if p.name != "fault_lib.sh"
    }
    listed = re.search(r"^ALL=\(([^)]*)\)", (SCRIPTS / "faults.sh").read_text(), re.M)
    assert listed is not None
    assert (
        set(listed.group(1).split())
        == scenarios
        == {
            "export_disk_full",
            "postgres_restart",
            "worker_kill",
            "redis_restart",
        }
    )
    assert "bash scripts/faults.sh" in (ROOT / ".ci" / "run").read_text()


def test_scenarios_never_touch_the_machines_servers():
    """Private ports only: the drills stop and restart what they start, never 5432 or 6379."""
    for script in [
        *SCRIPTS.glob("fault*.sh"),
        SCRIPTS / "bench_gunicorn_pgbouncer.sh",
        *SCRIPTS.glob("fault_*.py"),
    ]:
        text = script.read_text()
        assert ":5432" not in text and ":6379" not in text, script.name
        assert "pg_ctlcluster" not in text and "systemctl" not in text, script.name


@pytest.mark.django_db(transaction=True)
def test_bench_queue_drives_a_server_it_did_not_start(live_server, settings):
    settings.PREFLAB_NEXT_RATE = "100000/s"
    out = StringIO()
    call_command(
        "bench_queue",
        "--url",
        live_server.url,
        "--raters",
        "2",
        "--judgments",
        "12",
        "--skip-service",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    http = result["http"]
    assert http["server"] == live_server.url
    assert (http["judgments"], http["errors"], http["error_statuses"]) == (12, 0, {})
    assert http["invariants"] == {
        "double_leases": 0,
        "over_overlap": 0,
        "rater_twice_on_item": 0,
        "judgments": 12,
    }
    assert http["server_cpu_ms_per_judgment"] is None  # no --server-pid: not measured
    assert "service_claim_rate" in result and result["service_claim_rate"] == {}
