#!/usr/bin/env bash
# Runs the CUDA paths of gpu-verify on a machine with an NVIDIA GPU: the whole test suite
# (whose CUDA tests compare every GPU path with the CPU bit for bit), the CUDA tests again
# under compute-sanitizer's memcheck when it is installed, then the GPU benchmark.
#
# Uses the binaries staged in .gpu/ by scripts/gpu/stage.sh when present (GPU machines
# without Rust); otherwise builds them with cargo first.
#
# With CPU_BENCH=1 it then runs the CPU int8 GEMM criterion bench (1 and 2 threads) and ONNX
# Runtime's MatMulInteger on the same shapes, when python3 there has onnxruntime: GPU
# machines are large and quiet, so their 2-thread figures show scaling that a busy 2-core
# machine cannot.
#
# The GPU tests are #[ignore]d ("needs a CUDA device"), so `cargo test` / `cargo nextest run`
# without a GPU show them as ignored / skipped, never as passed; this script runs them with
# --include-ignored, where they fail if CUDA does not start. It exits non-zero when CUDA
# does not start (first check: a_cuda_device_starts), whether or not the driver library is
# there, when any test fails, and when the benchmark fails.
#
# Usage: [CPU_BENCH=1] scripts/gpu/check.sh [sizes...]   (GPU bench sizes, default 4096 8192)
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -x .gpu/it ] || bash scripts/gpu/stage.sh || exit 1
export PATH="$PATH:/usr/local/cuda/bin"
status=0
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== CUDA starts"
if ! out=$(.gpu/it --include-ignored --nocapture a_cuda_device_starts 2>&1); then
    echo "$out" | grep -E "CUDA|panicked" | cut -c1-300
    if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so' || command -v nvidia-smi >/dev/null; then
        echo "check.sh: FAIL: CUDA libraries are present but CUDA did not start (reason above)" >&2
    else
        echo "check.sh: FAIL: no CUDA driver here (no libcuda.so, no nvidia-smi): nothing was checked" >&2
    fi
    exit 1
fi
echo "$out" | grep -E "CUDA tests run on" | cut -c1-300
echo "== CUDA tests (CUDA == CPU bit for bit)"
.gpu/it --include-ignored --nocapture cuda 2>&1 | grep -E "CUDA|test result|panicked|FAILED" | cut -c1-300
[ "${PIPESTATUS[0]}" = 0 ] || status=1
echo "== whole suite, GPU tests included"
.gpu/it --include-ignored 2>&1 | tail -2 | cut -c1-300
[ "${PIPESTATUS[0]}" = 0 ] || status=1
.gpu/unit 2>&1 | tail -2 | cut -c1-300
.gpu/unit >/dev/null 2>&1 || status=1
if command -v compute-sanitizer >/dev/null; then
    echo "== CUDA tests under compute-sanitizer memcheck"
    compute-sanitizer --tool memcheck --error-exitcode 9 .gpu/it --include-ignored cuda 2>&1 | tail -3 | cut -c1-300
    [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
echo "== benchmark"
.gpu/gpu_bench "$@" || status=1
if [ "${CPU_BENCH:-0}" = 1 ]; then
    echo "== CPU int8 GEMM: ours (criterion medians) and ONNX Runtime MatMulInteger"
    lscpu | grep -E "Model name|^CPU\(s\)"
    echo "int8 dot-product extensions: $(grep -owE 'avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    .gpu/gemm --bench 2>&1 | grep -E "^gemm_i8|time:|thrpt:" || status=1
    python3 scripts/bench/onnx_matmulinteger.py --sizes 512,1024,2048 --threads 1,2 || status=1
fi
exit $status
