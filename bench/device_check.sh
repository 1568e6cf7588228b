#!/usr/bin/env bash
# The prepared GPU check (issue 25, part 4): on a lent GPU machine run, from the repository root,
#   bash bench/device_check.sh
# It needs the project installed (make setup) and the packaged MiniLM; ~5 minutes on one GPU,
# well under the 8-minute budget. Without a GPU it says so and exits 0. Numbers land in
# bench/results/device-<card>.json; BENCHMARKS.md records the card and what they were.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "device check: no nvidia-smi here"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false timeout 480 "$PY" bench/device_check.py "$@"
