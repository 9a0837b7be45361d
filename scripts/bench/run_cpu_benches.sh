#!/usr/bin/env bash
# Runs the CPU benchmarks of lode-gpu-verify and ONNX Runtime's MatMulInteger back to back
# so their figures come from the same session, and writes everything to a log.
#
# Usage: scripts/bench/run_cpu_benches.sh [log]   (default log: /tmp/lode-gpu-bench.log)
# Needs: python3 with `pip install onnxruntime onnx numpy` available as $ORT_PY
# (default: /root/.cache/ortvenv/bin/python, created with
#   python3 -m venv /root/.cache/ortvenv && /root/.cache/ortvenv/bin/pip install onnxruntime onnx numpy).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lode-target}"
LOG="${1:-/tmp/lode-gpu-bench.log}"
ORT_PY="${ORT_PY:-/root/.cache/ortvenv/bin/python}"
: >"$LOG"
run() { echo "\$ $*" | tee -a "$LOG"; "$@" 2>&1 | tee -a "$LOG"; }
run nproc
run uptime
run cargo bench -p lode-gpu-verify --bench gemm
run "$ORT_PY" scripts/bench/onnx_matmulinteger.py --sizes 512,1024,2048 --threads 1,2
GEMM_KERNELS=avx512-vnni,avx2,portable GEMM_SIZES=512 run cargo bench -p lode-gpu-verify --bench gemm
run cargo bench -p lode-gpu-verify --bench verify
run cargo bench -p lode-gpu-verify --bench merkle
run cargo test -p lode-gpu-verify --test it detection -- --nocapture
run uptime
