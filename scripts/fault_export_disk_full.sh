#!/usr/bin/env bash
# Fault: the export disk fills up in the middle of an export.
#
# A 256 KiB tmpfs is mounted on the export folder (PREFLAB_EXPORT_ROOT) over a private PostgreSQL
# (scripts/fault_lib.sh) holding 6,000 seeded judgments; a trl export (JSONL + Parquet, a few MB)
# runs as the worker's task does. It must end `failed` with an error naming the full disk, leave
# nothing behind in the folder, and a new run of the same export must succeed once the tmpfs is
# remounted with 64 MiB (scripts/fault_export.py). Needs root (mount). Prints JSON; exits non-zero
# on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/fault_lib.sh
[ "$(id -u)" = 0 ] || { echo '{"scenario": "export_disk_full", "ok": false, "error": "needs root to mount a tmpfs"}'; exit 1; }
fault_init
fault_pg_start
fault_pg_createdb preflab
fault_app_env
$PY manage.py migrate -v0
fault_tmpfs_mount "$PREFLAB_EXPORT_ROOT" "${FAULT_EXPORT_DISK:-256k}"
timeout -k 10 "${FAULT_TIMEOUT:-240}" $PY scripts/fault_export.py \
  --free-command "mount -o remount,size=64m '$PREFLAB_EXPORT_ROOT'" "$@"
