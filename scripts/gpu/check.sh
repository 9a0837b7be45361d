#!/usr/bin/env bash
# Runs the CUDA paths of gpu-verify on a machine with an NVIDIA GPU: the whole test suite
# (whose CUDA tests compare every GPU path with the CPU bit for bit), the CUDA tests again
# under compute-sanitizer's memcheck when it is installed, then the GPU benchmark.
#
# Uses the binaries staged in .gpu/ by scripts/gpu/stage.sh when present (GPU machines
# without Rust); otherwise builds them with cargo first.
#
# Usage: scripts/gpu/check.sh [sizes...]     (benchmark sizes, default 4096 8192)
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -x .gpu/it ] || bash scripts/gpu/stage.sh || exit 1
export PATH="$PATH:/usr/local/cuda/bin"
status=0
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== CUDA tests (must say where they ran; a skip prints its reason)"
.gpu/it --nocapture cuda 2>&1 | grep -E "CUDA|skip|test result|panicked" | cut -c1-300
echo "== whole suite"
.gpu/it 2>&1 | tail -2 | cut -c1-300
.gpu/it >/dev/null 2>&1 || status=1
.gpu/unit 2>&1 | tail -2 | cut -c1-300
.gpu/unit >/dev/null 2>&1 || status=1
if command -v compute-sanitizer >/dev/null; then
    echo "== CUDA tests under compute-sanitizer memcheck"
    compute-sanitizer --tool memcheck --error-exitcode 9 .gpu/it cuda 2>&1 | tail -3 | cut -c1-300
    [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
echo "== benchmark"
.gpu/gpu_bench "$@" || status=1
exit $status
