#!/usr/bin/env bash
# GPU int8 GEMM benchmark: our CUDA paths vs raw cuBLAS gemm_ex at n = 4096 and 8192.
#
# Needs an NVIDIA GPU with driver, libcublas and libnvrtc (CUDA 12.x) on the library path;
# cudarc loads them at run time, so no toolkit is needed to build. On a machine without a
# GPU the binary prints why and exits 0 (this is how it is exercised in CI/dev boxes).
#
# Usage: scripts/gpu/bench.sh [sizes...]     e.g. scripts/gpu/bench.sh 4096 8192
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lode-target}"
cargo build --release -p lode-gpu-verify --example gpu_bench
"$CARGO_TARGET_DIR/release/examples/gpu_bench" "$@"
