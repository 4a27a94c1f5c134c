#!/usr/bin/env bash
# Fault: a generation worker is killed with SIGKILL in the middle of a batch.
#
# Three Celery workers on the `gpu` queue (CPU, the bundled model, 8 new tokens), a `default`
# worker and beat drain one job of 96 prompts x 2 generators x 2 samples over a private Redis and
# a private PostgreSQL (scripts/fault_lib.sh); once a quarter is written, the worker holding a
# batch is killed. The job must succeed with exactly one candidate per (prompt, generator, sample).
# The killed batch's message stays unacknowledged in Redis for the visibility timeout (an hour):
# the stall check (beat, every minute) sends it again after PREFLAB_BATCH_STALL_SECONDS, shortened
# here to 20 s. Prints JSON (scripts/fault_generation.py); exits non-zero on failure.
#
#   bash scripts/fault_worker_kill.sh [extra fault_generation.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/fault_lib.sh
fault_generation_scenario kill "$@"
