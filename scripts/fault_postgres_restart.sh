#!/usr/bin/env bash
# Fault: PostgreSQL restarts while raters judge through gunicorn.
#
# A private PostgreSQL (scripts/fault_lib.sh) and gunicorn with 4 workers and production settings
# on it; 16 simulated raters loop next -> judgment (scripts/fault_rating.py) while PostgreSQL is
# stopped (fast shutdown) for 5 s and started again. Clients must see 503 with Retry-After (never
# another 5xx), every judgment acknowledged with 201 must be in the database afterwards, and
# requests must succeed again once PostgreSQL is back, with nobody restarting anything
# (CONN_HEALTH_CHECKS reconnects each worker). Prints JSON; exits non-zero on failure.
#
#   bash scripts/fault_postgres_restart.sh [extra fault_rating.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/fault_lib.sh
fault_stack_up  # Redis too: /readyz checks the broker
export FAULT_DIR FAULT_PG_PORT PG_BIN
# Raters with no think time ask far more often than the per-user rate a person reaches.
export PREFLAB_NEXT_RATE=100000/s
$PY manage.py migrate -v0
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# As the Procfile runs it (its --config, where the checkout has one: the metrics' multiprocess
# folder then lives under the private PREFLAB_VAR_DIR).
GUNICORN_CONF=()
[ -f deploy/gunicorn.conf.py ] && GUNICORN_CONF=(--config deploy/gunicorn.conf.py)
fault_spawn "$FAULT_DIR/gunicorn.log" .venv/bin/gunicorn labeling.wsgi "${GUNICORN_CONF[@]}" --bind "127.0.0.1:$PORT" --workers 4 \
  --timeout 60 --log-level warning
for _ in $(seq 120); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$FAULT_DIR/gunicorn.log" >&2; exit 1; }
status=0
timeout -k 10 "${FAULT_TIMEOUT:-240}" $PY scripts/fault_rating.py --url "http://127.0.0.1:$PORT" "$@" || status=$?
if [ "$status" != 0 ]; then
  echo "--- gunicorn log (tail)" >&2
  tail -30 "$FAULT_DIR/gunicorn.log" >&2
fi
exit "$status"
