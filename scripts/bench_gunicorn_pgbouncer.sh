#!/usr/bin/env bash
# Rater load through the production shape: gunicorn (4 workers, production settings) -> PgBouncer
# (transaction pooling, DATABASE_TRANSACTION_POOLER=1) -> PostgreSQL, all private to this run
# (scripts/fault_lib.sh: a throw-away cluster on 5499, PgBouncer on 6499, Redis on 6399).
#
# `manage.py bench_queue --url` drives the server with RATERS simulated raters (64) looping
# next -> judgment with no think time until JUDGMENTS (20,000) are recorded, then
# `check_integrity` recomputes every counter and invariant from the rows. Prints one JSON object:
# the benchmark (throughput, p50/p95/p99, server and PostgreSQL CPU per judgment, errors by
# status) and the integrity report. Exits non-zero on any 5xx, invariant violation or drift.
#
#   bash scripts/bench_gunicorn_pgbouncer.sh            # RATERS=64 JUDGMENTS=20000 WORKERS=4
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/fault_lib.sh
RATERS=${RATERS:-64}
JUDGMENTS=${JUDGMENTS:-20000}
WORKERS=${WORKERS:-4}
fault_init
fault_pg_start
fault_pg_createdb preflab
fault_redis_start
fault_pgbouncer_start
fault_app_env
# Migrations run on PostgreSQL directly; everything else goes through PgBouncer.
$PY manage.py migrate -v0
export DATABASE_URL=postgres://postgres@127.0.0.1:$FAULT_PGBOUNCER_PORT/preflab DATABASE_TRANSACTION_POOLER=1
# Raters with no think time ask far more often than the per-user rate a person reaches; the
# throttle still runs, so its cost counts.
export PREFLAB_NEXT_RATE=100000/s
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# As the Procfile runs it (its --config, where the checkout has one: the metrics' multiprocess
# folder then lives under the private PREFLAB_VAR_DIR).
GUNICORN_CONF=()
[ -f deploy/gunicorn.conf.py ] && GUNICORN_CONF=(--config deploy/gunicorn.conf.py)
fault_spawn "$FAULT_DIR/gunicorn.log" .venv/bin/gunicorn labeling.wsgi "${GUNICORN_CONF[@]}" --bind "127.0.0.1:$PORT" \
  --workers "$WORKERS" --timeout 60 --log-level warning
GUNICORN_PID=$FAULT_LAST_PID
for _ in $(seq 120); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || { tail -30 "$FAULT_DIR/gunicorn.log" >&2; exit 1; }
POSTMASTER=$(head -1 "$FAULT_DIR/pg/postmaster.pid")
timeout -k 10 "${BENCH_TIMEOUT:-1200}" $PY manage.py bench_queue --url "http://127.0.0.1:$PORT" \
  --server-pid "$GUNICORN_PID" --postgres-pid "$POSTMASTER" --raters "$RATERS" --judgments "$JUDGMENTS" \
  --skip-service --keep >"$FAULT_DIR/bench.json"
integrity=0
$PY manage.py check_integrity --json >"$FAULT_DIR/integrity.json" || integrity=$?
$PY - "$FAULT_DIR/bench.json" "$FAULT_DIR/integrity.json" "$integrity" "$WORKERS" <<'PY'
import json, os, sys
bench = json.load(open(sys.argv[1]))
integrity = json.load(open(sys.argv[2]))
http = bench["http"]
fivexx = {s: n for s, n in http["error_statuses"].items() if int(s) >= 500}
inv = http["invariants"]
result = {
    "benchmark": "gunicorn_pgbouncer",
    "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
    **http,
    "gunicorn_workers": int(sys.argv[4]),
    "pgbouncer": "transaction pooling, default_pool_size 40",
    "five_xx": sum(fivexx.values()),
    "check_integrity_exit": int(sys.argv[3]),
    "check_integrity": {
        "rules_checked": len(next((v for v in integrity.values() if isinstance(v, dict)), {})),
        "drift": integrity.get("drift"),
    },
}
result["ok"] = (
    not fivexx
    and http["errors"] == 0
    and inv["double_leases"] == inv["over_overlap"] == inv["rater_twice_on_item"] == 0
    and int(sys.argv[3]) == 0
)
print(json.dumps(result, indent=2))
sys.exit(0 if result["ok"] else 1)
PY
