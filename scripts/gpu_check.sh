#!/usr/bin/env bash
# GPU check: on a CUDA machine, run the GPU tests and the generation benchmark (256 prompts x 4
# samples x 64 new tokens; the naive loop on 8 of the prompts, its tokens/s being a rate) in under
# 5 minutes. Extra arguments go to bench_generation (later flags win).
#
# - With the dev install on a CUDA machine (make install-dev, torch 2.13.0 from the CUDA index):
#     bash scripts/gpu_check.sh
# - On a GPU machine that has PyTorch but no venv and no network (the lent H100/H200): pack here
#   with `.venv/bin/python scripts/gpu_pack.py pack`, then there, one call per printed folder:
#     bash scripts/gpu_check.sh stage      # with .gpu/model-1, then .gpu/model-2 carried
#     bash scripts/gpu_check.sh            # with .gpu/run carried: assembles, installs, checks
#
# Results (versions, test log, benchmark JSON and its log) go to $PREFLAB_GPU_CHECK_OUT, else $OUT, else
# var/gpu_check/. PREFLAB_GPU_CHECK_CPU=1 runs the script without CUDA (the gpu tests then skip):
# the suite does that to keep this script working.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${PREFLAB_GPU_STAGE:-/tmp/preflab-gpu}
RESULTS=${PREFLAB_GPU_CHECK_OUT:-${OUT:-var/gpu_check}}

if [ "${1:-}" = stage ]; then
  exec "${PYTHON:-python3}" scripts/gpu_pack.py stage --stage "$STAGE"
fi

mkdir -p "$RESULTS"
if [ -n "${PYTHON:-}" ]; then # an interpreter that has everything already
  PY=$PYTHON
elif [ -f .gpu/run/manifest.json ]; then # a packed run: the machine's python3 plus the pack
  PY=python3
  SITE=$("$PY" scripts/gpu_pack.py assemble --stage "$STAGE")
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  PY=.venv/bin/python
fi
if [ "${PREFLAB_GPU_CHECK_CPU:-}" != 1 ]; then
  export PREFLAB_REQUIRE_CUDA=1 # the gpu tests fail, rather than skip, if CUDA is missing
fi

"$PY" - <<'PYEOF' | tee "$RESULTS/versions.txt"
import importlib.metadata as m
import os
import platform
import sys

import torch

if not torch.cuda.is_available() and os.environ.get("PREFLAB_GPU_CHECK_CPU") != "1":
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device")
device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (dry run)"
print(f"gpu_check: {device}; Python {platform.python_version()}")
for name in ("torch", "transformers", "accelerate", "tokenizers", "django", "celery"):
    print(f"  {name} {m.version(name)}")
PYEOF

status=0
echo "== GPU tests"
timeout 200 "$PY" -m pytest -q -rs -m gpu -p no:cacheprovider tests/model_runner >"$RESULTS/pytest.txt" 2>&1 ||
  status=$?
cat "$RESULTS/pytest.txt"

bench() { # $1: output name; then flags
  local name=$1
  shift
  timeout "$BENCH_SECONDS" "$PY" manage.py bench_generation --prompts 256 --samples 4 --max-new-tokens 64 \
    --naive-prompts 8 "$@" >"$RESULTS/$name.json" 2>"$RESULTS/$name.log"
}
BENCH_SECONDS=${PREFLAB_GPU_BENCH_SECONDS:-240}
echo "== bench_generation (the first runner pass pays torch.compile: compile_seconds)"
if ! bench bench "$@"; then
  status=1
  tail -n 30 "$RESULTS/bench.log"
  # One borrowed session should still bring figures back: the runner without the compiled step.
  echo "== bench_generation failed; again with --no-compile"
  BENCH_SECONDS=150 bench bench-no-compile "$@" --no-compile || tail -n 30 "$RESULTS/bench-no-compile.log"
  cat "$RESULTS/bench-no-compile.json"
fi
cat "$RESULTS/bench.json"
echo "gpu_check: exit $status; results in $RESULTS/"
exit "$status"
