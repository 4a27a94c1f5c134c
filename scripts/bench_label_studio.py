"""Benchmark Label Studio's labeling stream the way ``manage.py bench_queue`` benchmarks Preflab.

What it measures: Label Studio (open-source edition) under gunicorn (sync workers) on PostgreSQL
(or its default SQLite with ``--sqlite``). One project with a pairwise labeling config and
``maximum_annotations = --overlap``; ``judgments / overlap + 2 * raters`` imported tasks (prompt
and two ~400-character answers); R rater users in the admin's organization. Each rater is a
client thread with its own HTTP connection and API token that loops
``GET /api/projects/{id}/next/`` -> ``POST /api/tasks/{task}/annotations/`` with no think time
until the judgment budget is spent or ``next`` has no task left. Prints one JSON object with the
same figures as bench_queue: judgments/s, p50/p95/p99 of next and of submit (ms), gunicorn CPU
ms per judgment (user + system time of the gunicorn master and workers), PostgreSQL CPU ms
per judgment (live postgres processes, as bench_queue; plus the backends that exited during the
run, read from the postmaster's cutime/cstime, because Label Studio opens a new database
connection per request), client CPU, and the invariants: tasks with more annotations than
``maximum_annotations`` (surplus annotations, count and % of all annotations) and a rater who
annotated the same task twice.

It mirrors ``labeling/management/commands/bench_queue.py``: the same client loop, and the same
percentiles and CPU accounting, imported from ``labeling.benchstats`` (run this script with
Preflab's venv python). Label Studio is driven through its own venv (its
``manage.py`` for migrations, user and token setup, and the invariant counts) and its REST API
(project, import, labeling).

Install Label Studio in its own venv (never into Preflab's)::

    python3.11 -m venv /tmp/ls-venv
    /tmp/ls-venv/bin/pip install label-studio==1.23.0 gunicorn psycopg2-binary

Run (PostgreSQL on 127.0.0.1:5432, user postgres, trust auth; the database is created and
dropped)::

    .venv/bin/python scripts/bench_label_studio.py --ls-python /tmp/ls-venv/bin/python \\
        --database ls_bench --raters 8 --judgments 3000 --overlap 2 --workers 2
    .venv/bin/python scripts/bench_label_studio.py --ls-python /tmp/ls-venv/bin/python --sqlite

Label Studio 1.23 disables legacy ``Authorization: Token`` keys for new organizations; the
script creates the organization with ``legacy_api_tokens_enabled`` (the same switch as
``label-studio start --enable-legacy-api-token``) and also sets
``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=1``. Outbound calls (Sentry, PyPI version check,
analytics) are switched off through Label Studio's environment variables.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from labeling import benchstats  # run with Preflab's venv python (see above)

LABEL_CONFIG = (
    '<View><Text name="prompt" value="$prompt"/>'
    '<Pairwise name="pw" toName="a,b"/>'
    '<Text name="a" value="$a"/><Text name="b" value="$b"/></View>'
)
RESULT = [{"from_name": "pw", "to_name": "pw", "type": "pairwise", "value": {"selected": "left"}}]
PASSWORD = "bench-password-1"  # throw-away users in a throw-away database

SETUP_CODE = """
import json
import sys
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User

admin = User.objects.create_user(email="bench-admin@bench.local", password=PASSWORD)
admin.is_staff = True
admin.is_superuser = True
admin.save()
org = Organization.create_organization(
    created_by=admin, title="bench", legacy_api_tokens_enabled=True
)
admin.active_organization = org
admin.save(update_fields=["active_organization"])
raters = []
for i in range(N_RATERS):
    user = User.objects.create_user(email=f"bench-rater-{i}@bench.local", password=PASSWORD)
    org.add_user(user)
    user.active_organization = org
    user.save(update_fields=["active_organization"])
    raters.append(user)
key = lambda u: Token.objects.get_or_create(user=u)[0].key
sys.stdout.write(json.dumps({
    "legacy_api_tokens_enabled": org.jwt.legacy_api_tokens_enabled,
    "admin": key(admin),
    "raters": [key(u) for u in raters],
}) + "\\n")
"""

INVARIANTS_CODE = """
import json
import sys
from django.db.models import Count
from django.utils.timezone import now
from projects.models import Project
from tasks.models import Annotation, Task, TaskLock

project = Project.objects.get(pk=PROJECT_ID)
limit = project.maximum_annotations
live = Annotation.objects.filter(project=project, was_cancelled=False)
per_task = list(live.values("task_id").annotate(n=Count("id")).values_list("n", flat=True))
over = [n for n in per_task if n > limit]
total = live.count()
surplus = sum(n - limit for n in over)
pairs = live.values("task_id", "completed_by_id").annotate(n=Count("id")).filter(n__gt=1).count()
locks = (
    TaskLock.objects.filter(task__project=project, expire_at__gt=now())
    .values("task_id").annotate(n=Count("id")).filter(n__gt=limit).count()
)
sys.stdout.write(json.dumps({
    "maximum_annotations": limit,
    "tasks": Task.objects.filter(project=project).count(),
    "annotations": total,
    "cancelled_annotations": Annotation.objects.filter(project=project, was_cancelled=True).count(),
    "tasks_over_maximum_annotations": len(over),
    "surplus_annotations": surplus,
    "surplus_annotations_pct": round(100 * surplus / total, 2) if total else 0.0,
    "rater_twice_on_task": pairs,
    "tasks_over_locked_at_end": locks,
    "tasks_fully_annotated": sum(1 for n in per_task if n >= limit),
}) + "\\n")
"""


# -- PostgreSQL and Label Studio plumbing ------------------------------------------------------
def _psql(sql: str, database: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _xacts_by_database() -> dict[str, int]:
    rows = _psql(
        "select datname, xact_commit + xact_rollback from pg_stat_database where datname is not null"
    )
    result = {}
    for row in rows.splitlines():
        name, _, count = row.partition("|")
        result[name] = int(count)
    return result


def _ls_env(args: argparse.Namespace, data_dir: str) -> dict[str, str]:
    # A clean environment: Label Studio reads unprefixed names too (HOST, DEBUG, USERNAME...).
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
            "LABEL_STUDIO_BASE_DATA_DIR": data_dir,
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "PYTHONWARNINGS": "ignore",
        }
    )
    if args.sqlite:
        env["DJANGO_DB"] = "sqlite"
    else:
        env.update(
            {
                "DJANGO_DB": "default",
                "POSTGRE_NAME": args.database,
                "POSTGRE_USER": "postgres",
                "POSTGRE_PASSWORD": "",
                "POSTGRE_HOST": "127.0.0.1",
                "POSTGRE_PORT": "5432",
            }
        )
    return env


def _ls_path(ls_python: str) -> str:
    out = subprocess.run(
        [ls_python, "-c", "import label_studio, os; print(os.path.dirname(label_studio.__file__))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _manage(args: argparse.Namespace, env: dict[str, str], ls_path: str, *command: str) -> str:
    out = subprocess.run(
        [args.ls_python, os.path.join(ls_path, "manage.py"), *command],
        env=env,
        cwd=ls_path,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"manage.py {command[0]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def _ls_shell(args: argparse.Namespace, env: dict[str, str], ls_path: str, code: str) -> dict[str, Any]:
    stdout = _manage(args, env, ls_path, "shell", "-c", code)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON from Label Studio shell:\n{stdout[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _request(
    port: int, method: str, path: str, token: str, body: Any = None, timeout: float = 600
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    conn.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw[:500].decode(errors="replace")


def _make_tasks(n_tasks: int) -> list[dict[str, str]]:
    return [
        {
            "prompt": f"bench question {i}: " + "Explain the trade-offs of the approach. " * 2,
            "a": f"Answer 0 to {i}. " + "This is the first candidate answer text. " * 10,
            "b": f"Answer 1 to {i}. " + "This is the second candidate answer text. " * 10,
        }
        for i in range(n_tasks)
    ]


def _setup_project(port: int, admin_token: str, overlap: int, n_tasks: int) -> int:
    status, project = _request(
        port,
        "POST",
        "/api/projects/",
        admin_token,
        {"title": "bench", "label_config": LABEL_CONFIG, "maximum_annotations": overlap},
    )
    if status != 201:
        raise RuntimeError(f"project create: {status} {project}")
    project_id = int(project["id"])
    status, body = _request(
        port, "POST", f"/api/projects/{project_id}/import", admin_token, _make_tasks(n_tasks)
    )
    if status != 201:
        raise RuntimeError(f"import: {status} {body}")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status, info = _request(port, "GET", f"/api/projects/{project_id}/", admin_token)
        if status == 200 and info.get("task_number") == n_tasks:
            return project_id
        time.sleep(1)
    raise RuntimeError(f"import did not finish: {info}")


# -- the benchmark -----------------------------------------------------------------------------
def _client_loop(port: int, project_id: int, tokens: list[str], budget: int) -> dict[str, Any]:
    next_lat: list[float] = []
    submit_lat: list[float] = []
    counter: dict[str, Any] = {
        "judgments": 0,
        "errors": 0,
        "statuses": Counter(),
        "no_task": 0,
        "samples": [],
        "next_statuses": Counter(),
    }
    served: dict[int, set[int]] = defaultdict(set)
    lock = threading.Lock()
    stop = threading.Event()

    def rater_loop(index: int, token: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        while not stop.is_set():
            t0 = time.perf_counter()
            conn.request("GET", f"/api/projects/{project_id}/next/", headers=headers)
            response = conn.getresponse()
            body = response.read()
            next_lat.append(time.perf_counter() - t0)
            with lock:
                counter["next_statuses"][response.status] += 1
            if response.status == 404:
                with lock:
                    counter["no_task"] += 1
                return
            if response.status != 200:
                with lock:
                    counter["errors"] += 1
                    counter["statuses"][f"next {response.status}"] += 1
                    counter["samples"].append(body[:300].decode(errors="replace"))
                return
            task_id = int(json.loads(body)["id"])
            with lock:
                served[task_id].add(index)
                if counter["judgments"] >= budget:
                    stop.set()
                    return
                counter["judgments"] += 1
            payload = {"result": RESULT, "project": project_id, "lead_time": 1.0}
            t1 = time.perf_counter()
            conn.request(
                "POST",
                f"/api/tasks/{task_id}/annotations/?project={project_id}",
                body=json.dumps(payload).encode(),
                headers=headers,
            )
            response = conn.getresponse()
            submit_body = response.read()
            submit_lat.append(time.perf_counter() - t1)
            if response.status != 201:
                with lock:
                    counter["errors"] += 1
                    counter["statuses"][f"submit {response.status}"] += 1
                    counter["samples"].append(submit_body[:300].decode(errors="replace"))

    elapsed = benchstats.run_raters([functools.partial(rater_loop, i, t) for i, t in enumerate(tokens)])
    return {
        "seconds": elapsed,
        "next_lat": next_lat,
        "submit_lat": submit_lat,
        "counter": counter,
        "served": served,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "system": "label-studio",
        "database": "sqlite" if args.sqlite else "postgresql",
        "cpus": os.cpu_count(),
        "raters": args.raters,
        "overlap": args.overlap,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    data_dir = tempfile.mkdtemp(prefix="ls-bench-")
    env = _ls_env(args, data_dir)
    ls_path = _ls_path(args.ls_python)
    version = subprocess.run(
        [args.ls_python, "-c", "import importlib.metadata as m; print(m.version('label-studio'))"],
        capture_output=True,
        text=True,
    )
    result["label_studio_version"] = version.stdout.strip()
    created_db = False
    server: subprocess.Popen[bytes] | None = None
    try:
        try:
            if not args.sqlite:
                _psql(f'drop database if exists "{args.database}"')
                _psql(f'create database "{args.database}"')
                created_db = True
            t0 = time.perf_counter()
            _manage(args, env, ls_path, "migrate", "--no-color", "-v", "0")
            result["migrate_seconds"] = round(time.perf_counter() - t0, 1)
            code = SETUP_CODE.replace("PASSWORD", repr(PASSWORD)).replace("N_RATERS", str(args.raters))
            users = _ls_shell(args, env, ls_path, code)
            result["legacy_api_tokens_enabled"] = users["legacy_api_tokens_enabled"]
            tokens: list[str] = users["raters"]

            port = benchstats.free_port()
            log = open(os.path.join(data_dir, "gunicorn.log"), "wb")  # closed in the finally below
            server = subprocess.Popen(
                [args.ls_python, "-m", "gunicorn", "core.wsgi:application", "--pythonpath", ls_path,
                 "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "--log-level", "warning",
                 "--keep-alive", "30", "--threads", "1", "--timeout", "120"],
                env=env, cwd=ls_path, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            benchstats.wait_for_server(port, server)
            n_tasks = args.judgments // args.overlap + 2 * args.raters
            project_id = _setup_project(port, users["admin"], args.overlap, n_tasks)
            result["tasks"] = n_tasks
            # Touch every worker once so imports and connections are not in the timings.
            for i in range(12):
                _request(port, "GET", f"/api/projects/{project_id}/", tokens[i % len(tokens)], timeout=60)

            pids = [server.pid, *benchstats.children(server.pid)]
            pg = [] if args.sqlite else benchstats.postgres_pids()
            postmasters = benchstats.postmaster_pids(pg)
            xacts0 = {} if args.sqlite else _xacts_by_database()
            cpu0, pg0, client0 = (
                benchstats.cpu_seconds(pids),
                benchstats.cpu_seconds(pg),
                benchstats.own_cpu_seconds(),
            )
            reaped0 = sum(benchstats.reaped_children_cpu_seconds(p) for p in postmasters)
            run_ = _client_loop(port, project_id, tokens, args.judgments)
            cpu = benchstats.cpu_seconds(pids) - cpu0
            pg_cpu = benchstats.cpu_seconds(pg) - pg0
            client_cpu = benchstats.own_cpu_seconds() - client0
            reaped = sum(benchstats.reaped_children_cpu_seconds(p) for p in postmasters) - reaped0
            xacts1 = {} if args.sqlite else _xacts_by_database()
            result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=60)
                log.close()
                server_log = Path(data_dir, "gunicorn.log").read_text(errors="replace")
                # Label Studio logs its own detection of a task taken by more raters than the overlap.
                result["ls_logged_num_takes_over_overlap"] = server_log.count("> overlap=")
                result["ls_logged_errors"] = server_log.count("[ERROR]")
                result["ls_logged_database_is_locked"] = sum(
                    1
                    for line in server_log.splitlines()
                    if "[ERROR]" in line and "database is locked" in line
                )
        invariants = _ls_shell(args, env, ls_path, INVARIANTS_CODE.replace("PROJECT_ID", str(project_id)))
    finally:
        if created_db and not args.keep:
            _psql(f'drop database if exists "{args.database}" with (force)')
        if args.keep:
            result["data_dir"] = data_dir
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    done = int(invariants["annotations"])
    elapsed = run_["seconds"]
    counter = run_["counter"]
    served = run_["served"]
    http_result: dict[str, Any] = {
        "gunicorn_workers": args.workers,
        "gunicorn_threads": 1,
        "judgments": done,
        "seconds": round(elapsed, 2),
        "judgments_per_second": round(done / elapsed, 1),
        "next_ms": benchstats.percentiles_ms(run_["next_lat"]),
        "submit_ms": benchstats.percentiles_ms(run_["submit_lat"]),
        "server_cpu_ms_per_judgment": round(cpu * 1000 / max(done, 1), 2),
        "postgres_cpu_ms_per_judgment": round(pg_cpu * 1000 / max(done, 1), 2) if pg else None,
        "postgres_cpu_ms_per_judgment_incl_exited_backends": (
            round((pg_cpu + reaped) * 1000 / max(done, 1), 2) if pg else None
        ),
        "client_cpu_ms_per_judgment": round(client_cpu * 1000 / max(done, 1), 2),
        "errors": counter["errors"],
        "error_statuses": dict(counter["statuses"]),
        "error_samples": counter["samples"][:3],
        "next_statuses": dict(counter["next_statuses"]),
        "raters_stopped_by_no_task": counter["no_task"],
        "tasks_served_to_more_raters_than_overlap": sum(1 for r in served.values() if len(r) > args.overlap),
    }
    if not args.sqlite:
        other = {
            name: xacts1.get(name, 0) - count
            for name, count in xacts0.items()
            if name != args.database and xacts1.get(name, 0) - count > 0
        }
        http_result["postgres_xacts_in_other_databases_during_run"] = other
        http_result["postgres_xacts_in_bench_database_during_run"] = xacts1.get(
            args.database, 0
        ) - xacts0.get(args.database, 0)
    for key in ("ls_logged_num_takes_over_overlap", "ls_logged_errors", "ls_logged_database_is_locked"):
        if key in result:
            http_result[key] = result.pop(key)
    http_result["invariants"] = invariants
    result["http"] = http_result
    if args.latencies:
        benchstats.write_latencies(
            args.latencies,
            system="Label Studio 1.23",
            judgments_per_second=http_result["judgments_per_second"],
            next_s=run_["next_lat"],
            submit_s=run_["submit_lat"],
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--ls-python", default="/tmp/ls-venv/bin/python", help="python of the LS venv")
    parser.add_argument("--database", default="ls_bench", help="PostgreSQL database (created and dropped)")
    parser.add_argument("--sqlite", action="store_true", help="use Label Studio's default SQLite database")
    parser.add_argument("--raters", type=int, default=8)
    parser.add_argument("--judgments", type=int, default=3000, help="Stop after this many judgments.")
    parser.add_argument("--overlap", type=int, default=2, help="the project's maximum_annotations")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync worker processes")
    parser.add_argument("--keep", action="store_true", help="keep the database and the data dir")
    parser.add_argument(
        "--latencies", help="write every request's latency (JSON) here, for plot_latencies.py"
    )
    args = parser.parse_args()
    sys.stdout.write(json.dumps(run(args), indent=2) + "\n")


if __name__ == "__main__":
    main()
