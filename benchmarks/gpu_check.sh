#!/usr/bin/env bash
# GPU evidence for the deployment path (issue 17.6): one command, under 8 minutes, one JSON summary.
#
#   bash benchmarks/gpu_check.sh [--output gpu_check.json] [--budget 450] [--only STEP ...] [--skip STEP ...]
#
# Steps and what each one checks: benchmarks/gpu_check.py (--list prints them). It needs the repository's
# .venv (make setup) with a CUDA build of torch; nvcc, compute-sanitizer, cmake, TensorRT (with its headers in
# TensorRT_ROOT) and onnxruntime are used where present, and the steps that need a missing one are skipped
# with the reason. GPU_CHECK_TIMEOUT (default 480 s) is a hard limit on the whole run; the JSON is rewritten
# after every step, so a run stopped by it keeps what it measured. Exit status: 0 if no step failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
  PY="$(command -v python3)"
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec timeout --signal=TERM --kill-after=15 "${GPU_CHECK_TIMEOUT:-480}" "$PY" benchmarks/gpu_check.py "$@"
