#!/usr/bin/env bash
# Fault: the broker (Redis) restarts in the middle of a generation job.
#
# Three `gpu` workers, a `default` worker and beat drain one job (96 prompts x 2 generators x 2
# samples, the bundled model on the CPU, 8 new tokens) over a private Redis and PostgreSQL
# (scripts/fault_lib.sh). Once a quarter is written, Redis is stopped for 5 s and started again,
# without persistence, so every queued message is lost. The workers reconnect by themselves; the
# stall check (beat, every minute) sees a job with nothing queued and nothing running and sends its
# missing batches again after PREFLAB_BATCH_STALL_SECONDS (20 s here). The job must succeed with
# exactly one candidate per (prompt, generator, sample). Prints JSON; exits non-zero on failure.
#
#   bash scripts/fault_redis_restart.sh [extra fault_generation.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/fault_lib.sh
fault_generation_scenario redis "$@"
