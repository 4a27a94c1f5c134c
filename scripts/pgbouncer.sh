#!/usr/bin/env bash
# PgBouncer in transaction pooling mode in front of a PostgreSQL server, as docs/operations.md
# ("PgBouncer") configures it for production; CI runs the test suite through it.
#
#   bash scripts/pgbouncer.sh start   # writes the configuration, starts it in the background
#   bash scripts/pgbouncer.sh stop
#
# Then point Preflab at it: DATABASE_URL=postgres://USER@127.0.0.1:6432/NAME with
# DATABASE_TRANSACTION_POOLER=1. Variables: PGBOUNCER_DIR (configuration, log and pid file;
# default var/pgbouncer), PGBOUNCER_PORT (6432), PGBOUNCER_UPSTREAM_HOST / _PORT (the PostgreSQL
# server, 127.0.0.1:5432), PGBOUNCER_USER (the one user it lets in without a password, as the
# upstream's trust authentication does here: postgres), PGBOUNCER_POOL_SIZE (server connections
# per database and user, 40). PgBouncer refuses to run as root: as root it runs as PGBOUNCER_USER.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${PGBOUNCER_DIR:-var/pgbouncer}
PORT=${PGBOUNCER_PORT:-6432}
USER_NAME=${PGBOUNCER_USER:-postgres}

stop() {
  if [ -f "$DIR/pgbouncer.pid" ]; then
    kill "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$DIR/pgbouncer.pid" ] || break; sleep 0.1; done
    rm -f "$DIR/pgbouncer.pid"
  fi
}

case "${1:-}" in
  start)
    command -v pgbouncer >/dev/null || { echo "pgbouncer is not installed (apt-get install pgbouncer)" >&2; exit 1; }
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    stop
    printf '"%s" ""\n' "$USER_NAME" > "$DIR/userlist.txt"
    cat > "$DIR/pgbouncer.ini" <<EOF
[databases]
* = host=${PGBOUNCER_UPSTREAM_HOST:-127.0.0.1} port=${PGBOUNCER_UPSTREAM_PORT:-5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = ${PGBOUNCER_POOL_SIZE:-40}
server_idle_timeout = 10
ignore_startup_parameters = extra_float_digits,options
admin_users = $USER_NAME
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF
    RUN_AS=()
    if [ "$(id -u)" = 0 ]; then
      chown -R "$USER_NAME" "$DIR"
      RUN_AS=(-u "$USER_NAME")
    fi
    pgbouncer -d "${RUN_AS[@]}" "$DIR/pgbouncer.ini"
    for _ in $(seq 50); do
      pg_isready -h 127.0.0.1 -p "$PORT" -q && { echo "pgbouncer: 127.0.0.1:$PORT (transaction pooling)"; exit 0; }
      sleep 0.1
    done
    echo "pgbouncer did not answer on 127.0.0.1:$PORT; its log: $DIR/pgbouncer.log" >&2
    exit 1
    ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
