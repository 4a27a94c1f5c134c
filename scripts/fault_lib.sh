# Shared by the scripts/fault_*.sh scenarios and scripts/bench_gunicorn_pgbouncer.sh (sourced, not run).
#
# Every scenario runs against services of its own, so that stopping or restarting them never
# touches the machine's PostgreSQL and Redis (other jobs use those): a throw-away PostgreSQL
# cluster (initdb into a temporary folder, trust authentication, loopback only), a private
# redis-server, and where asked a private PgBouncer. `fault_cleanup` (installed as an EXIT trap by
# `fault_init`) stops each process the script started, by its pid, and removes the folder.
#
# Variables: FAULT_PG_PORT (5499), FAULT_REDIS_PORT (6399), FAULT_PGBOUNCER_PORT (6499),
# FAULT_DIR (a new temporary folder). PostgreSQL refuses to run as root: as root it runs as the
# `postgres` user.

FAULT_PG_PORT=${FAULT_PG_PORT:-5499}
FAULT_REDIS_PORT=${FAULT_REDIS_PORT:-6399}
FAULT_PGBOUNCER_PORT=${FAULT_PGBOUNCER_PORT:-6499}
PY=${PY:-.venv/bin/python}
FAULT_PIDS=()
FAULT_MOUNTS=()

fault_log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

fault_init() {
  FAULT_DIR=${FAULT_DIR:-$(mktemp -d /tmp/preflab-fault.XXXXXX)}
  chmod 755 "$FAULT_DIR"
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$PG_BIN" ] || { echo "PostgreSQL server binaries not found under /usr/lib/postgresql" >&2; exit 1; }
  trap fault_cleanup EXIT
  trap 'exit 130' INT TERM
}

# Run a command as the postgres user when we are root (initdb and postgres refuse root).
_as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

fault_pg_start() {
  local data="$FAULT_DIR/pg"
  if [ ! -d "$data" ]; then
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data"
    _as_pg "$PG_BIN/initdb" -D "$data" -A trust -U postgres --no-sync -E UTF8 >"$FAULT_DIR/initdb.log" 2>&1 \
      || { cat "$FAULT_DIR/initdb.log" >&2; return 1; }
  fi
  _as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $FAULT_PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$data -c max_connections=200 -c shared_buffers=128MB" \
    start >/dev/null
}

# mode: fast (clients are disconnected, committed work is kept) or immediate (a crash: WAL replay).
fault_pg_stop() {
  _as_pg "$PG_BIN/pg_ctl" -D "$FAULT_DIR/pg" -m "${1:-fast}" -w -t 60 stop >/dev/null 2>&1 || true
}

fault_pg_createdb() {
  _as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$FAULT_PG_PORT" -U postgres "$1"
}

fault_redis_start() {
  redis-server --daemonize yes --bind 127.0.0.1 --port "$FAULT_REDIS_PORT" --save "" --appendonly no \
    --dir "$FAULT_DIR" --pidfile "$FAULT_DIR/redis.pid" --logfile "$FAULT_DIR/redis.log"
  for _ in $(seq 50); do redis-cli -p "$FAULT_REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis did not answer on $FAULT_REDIS_PORT" >&2
  return 1
}

fault_redis_stop() {
  if [ -f "$FAULT_DIR/redis.pid" ]; then
    local pid
    pid=$(cat "$FAULT_DIR/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$FAULT_DIR/redis.pid"
  fi
}

fault_pgbouncer_start() {
  PGBOUNCER_DIR="$FAULT_DIR/pgbouncer" PGBOUNCER_PORT="$FAULT_PGBOUNCER_PORT" \
    PGBOUNCER_UPSTREAM_PORT="$FAULT_PG_PORT" bash scripts/pgbouncer.sh start >&2
}

fault_pgbouncer_stop() {
  [ -d "$FAULT_DIR/pgbouncer" ] && PGBOUNCER_DIR="$FAULT_DIR/pgbouncer" bash scripts/pgbouncer.sh stop
  return 0
}

# Start a background process in a session of its own and remember it: fault_cleanup ends its group.
fault_spawn() {
  local log=$1
  shift
  setsid "$@" >>"$log" 2>&1 &
  FAULT_PIDS+=("$!")
  FAULT_LAST_PID=$!
}

fault_kill_group() {
  local pid=$1 signal=${2:-TERM}
  kill "-$signal" -- "-$pid" 2>/dev/null || kill "-$signal" "$pid" 2>/dev/null || true
}

# A tmpfs of SIZE (e.g. 256k) on FOLDER, unmounted by fault_cleanup (root only).
fault_tmpfs_mount() {
  local folder=$1 size=$2
  mkdir -p "$folder"
  mount -t tmpfs -o "size=$size,mode=0755" preflab-fault "$folder" || return 1
  FAULT_MOUNTS+=("$folder")
}

fault_cleanup() {
  local rc=$?
  for folder in "${FAULT_MOUNTS[@]}"; do umount "$folder" 2>/dev/null || umount -l "$folder" 2>/dev/null || true; done
  for pid in "${FAULT_PIDS[@]}"; do fault_kill_group "$pid" TERM; done
  for pid in "${FAULT_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fault_kill_group "$pid" KILL
  done
  fault_pgbouncer_stop
  fault_redis_stop
  [ -n "${PG_BIN:-}" ] && [ -d "${FAULT_DIR:-/nonexistent}/pg" ] && fault_pg_stop immediate
  if [ -n "${FAULT_KEEP:-}" ]; then
    fault_log "kept $FAULT_DIR (FAULT_KEEP)"
  else
    rm -rf "${FAULT_DIR:?}"
  fi
  exit "$rc"
}

# The environment every Preflab process of a scenario shares: production settings (debug off),
# the private database and broker, loopback only.
fault_app_env() {
  export DATABASE_URL=${1:-postgres://postgres@127.0.0.1:$FAULT_PG_PORT/preflab}
  export CELERY_BROKER_URL=redis://127.0.0.1:$FAULT_REDIS_PORT/0
  export DJANGO_SECRET_KEY=${DJANGO_SECRET_KEY:-fault-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  export DJANGO_DEBUG=0 DJANGO_ALLOWED_HOSTS=127.0.0.1 DJANGO_SECURE_SSL_REDIRECT=0 DJANGO_SECURE_COOKIES=0
  # The converted bundled model is shared with the checkout's var/ (converting it takes ~20 s).
  export PREFLAB_MODEL_CACHE=${PREFLAB_MODEL_CACHE:-$PWD/var/models}
  export PREFLAB_VAR_DIR=$FAULT_DIR/var
  export PREFLAB_EXPORT_ROOT=${PREFLAB_EXPORT_ROOT:-$FAULT_DIR/var/exports}
  export PREFLAB_LOG_LEVEL=${PREFLAB_LOG_LEVEL:-WARNING}
  mkdir -p "$PREFLAB_VAR_DIR"
}

# A private PostgreSQL (database preflab), a private Redis, and the environment for them.
fault_stack_up() {
  fault_init
  fault_pg_start
  fault_pg_createdb preflab
  fault_redis_start
  fault_app_env
}

# One generation fault scenario (scripts/fault_generation.py): $1 is the fault (kill, redis); the
# stall check resends a lost batch after PREFLAB_BATCH_STALL_SECONDS, shortened here to 20 s.
fault_generation_scenario() {
  local fault=$1
  shift
  fault_stack_up
  export PREFLAB_BATCH_STALL_SECONDS=${PREFLAB_BATCH_STALL_SECONDS:-20}
  export FAULT_DIR FAULT_REDIS_PORT
  $PY manage.py migrate -v0
  timeout -k 10 "${FAULT_TIMEOUT:-420}" $PY scripts/fault_generation.py --fault "$fault" --timeout 300 "$@"
}
