#!/usr/bin/env bash
# Builds the gpu-verify test binaries and the GPU benchmark here and stages them, stripped,
# in .gpu/ (git-ignored), for a GPU machine that has the NVIDIA driver and CUDA libraries
# but no Rust toolchain. Then, on that machine, from a copy of the repo with .gpu/ in it:
#
#   scripts/gpu/check.sh          # CUDA == CPU tests, memcheck, benchmark
#   scripts/gpu/job.sh            # 4096³ and 8192³ jobs end to end on a GPU provider daemon
#
# The binaries load libcuda, libcublas and libnvrtc at run time (cudarc dynamic loading),
# so nothing CUDA is needed to build them.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lode-target}"
mkdir -p .gpu
stage() { strip -o ".gpu/$2" "$1"; echo "staged .gpu/$2 ($(du -h ".gpu/$2" | cut -f1))"; }
json=$(cargo test -p lode-gpu-verify --release --no-run --message-format=json)
for exe in $(jq -r 'select(.executable != null and .target.kind[0] != "example") | .target.name + "=" + .executable' <<<"$json"); do
    case "${exe%%=*}" in
        it) stage "${exe#*=}" it ;;
        lode_gpu_verify) stage "${exe#*=}" unit ;;
    esac
done
cargo build -p lode-gpu-verify --release --example gpu_bench
stage "$CARGO_TARGET_DIR/release/examples/gpu_bench" gpu_bench
# The CPU GEMM criterion bench, for CPU_BENCH=1 scripts/gpu/check.sh on a quiet machine.
json=$(cargo bench -p lode-gpu-verify --bench gemm --no-run --message-format=json)
stage "$(jq -r 'select(.executable != null and .target.name == "gemm") | .executable' <<<"$json")" gemm
# The node binary, for scripts/gpu/job.sh (a devnet, a provider daemon on the GPU and `lode job submit`).
cargo build --release -p lode-node --bin lode
stage "$CARGO_TARGET_DIR/release/lode" lode
