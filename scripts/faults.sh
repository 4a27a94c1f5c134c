#!/usr/bin/env bash
# Every fault scenario, one after the other, each on private PostgreSQL/Redis instances of its own
# (scripts/fault_lib.sh): never the machine's servers. Each prints its JSON; this prints a summary
# line per scenario and exits non-zero if any failed. Each is bounded by `timeout`.
#
#   bash scripts/faults.sh                     # all four
#   bash scripts/faults.sh postgres_restart    # some of them, by name
set -uo pipefail
cd "$(dirname "$0")/.."
ALL=(export_disk_full postgres_restart worker_kill redis_restart)
if [ $# -gt 0 ]; then SCENARIOS=("$@"); else SCENARIOS=("${ALL[@]}"); fi
declare -A LIMIT=([export_disk_full]=300 [postgres_restart]=300 [worker_kill]=540 [redis_restart]=540)
failed=()
for name in "${SCENARIOS[@]}"; do
  script=scripts/fault_${name}.sh
  [ -f "$script" ] || { echo "unknown scenario: $name (one of: ${ALL[*]})" >&2; exit 2; }
  printf '\n==> fault: %s\n' "$name" >&2
  started=$(date +%s)
  if timeout -k 15 "${LIMIT[$name]}" bash "$script"; then
    echo "fault $name: ok ($(( $(date +%s) - started )) s)" >&2
  else
    echo "fault $name: FAILED ($(( $(date +%s) - started )) s)" >&2
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
echo "all fault scenarios passed: ${SCENARIOS[*]}" >&2
