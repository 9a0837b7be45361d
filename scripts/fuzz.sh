#!/usr/bin/env bash
# Runs every libFuzzer target in fuzz/ (or the ones named) for a given time each and prints, per target, the
# executions, the coverage reached, when coverage last grew, and the crashes. Installs what a fresh machine
# lacks (cargo-fuzz; the system packages of ensure-deps.sh). Works on stable Rust: targets are built without a
# sanitizer (`-s none`; the code denies `unsafe`), with debug assertions and overflow checks.
#
#   scripts/fuzz.sh                      # every target, 20 s each
#   scripts/fuzz.sh 3600                 # every target, one hour each (the long run)
#   scripts/fuzz.sh 60 query genesis     # two targets, one minute each
#   LODE_FUZZ_RUNS=10000000 scripts/fuzz.sh 3600   # each target until 10 million executions or one hour
#
# The committed seeds are fuzz/seeds/<target>/ (read only); what a run discovers goes to fuzz/corpus/<target>/
# (kept between runs, not committed) and a crashing input to fuzz/artifacts/<target>/. Exits non-zero when a
# target crashed. See docs/fuzzing.md.
#
# Building: RocksDB's C++ takes ~25 minutes on 2 cores, so when the workspace has been built (by
# scripts/test.sh, clippy or `cargo build`) the fuzz build links that build's librocksdb.a instead of compiling
# it again. Environment: CARGO_TARGET_DIR (the workspace's target dir to take librocksdb.a from, default
# ~/.cache/lode-target), LODE_FUZZ_TARGET_DIR (the fuzz build's own, default fuzz/target), LODE_FUZZ_JOBS
# (cargo build jobs), LODE_FUZZ_RSS_MB (libFuzzer's memory limit per target, default 4096), LODE_FUZZ_RUNS (stop a target after
# this many executions, when that comes before its time).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-20}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi

./scripts/ensure-deps.sh
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --version 0.13.2
fi

all_targets=()
for f in fuzz/fuzz_targets/*.rs; do
  all_targets+=("$(basename "$f" .rs)")
done
if [ $# -gt 0 ]; then
  targets=("$@")
  for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no target $t (have: ${all_targets[*]})" >&2; exit 2; }
  done
else
  targets=("${all_targets[@]}")
fi

workspace_target=${CARGO_TARGET_DIR:-$HOME/.cache/lode-target}
fuzz_target=${LODE_FUZZ_TARGET_DIR:-$root/fuzz/target}
unset CARGO_TARGET_DIR
rocksdb_lib=$(ls -t "$workspace_target"/*/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)
if [ -n "$rocksdb_lib" ]; then
  echo "fuzz.sh: linking RocksDB from $rocksdb_lib" >&2
  export ROCKSDB_LIB_DIR
  ROCKSDB_LIB_DIR=$(dirname "$rocksdb_lib")
  export ROCKSDB_STATIC=1
else
  echo "fuzz.sh: no librocksdb.a under $workspace_target; compiling RocksDB (slow; build the workspace first to skip this)" >&2
fi

build_args=(-s none --target-dir "$fuzz_target")
# cargo fuzz build has no -j; cargo reads the job count from the environment.
[ -n "${LODE_FUZZ_JOBS:-}" ] && export CARGO_BUILD_JOBS="$LODE_FUZZ_JOBS"
start=$(date +%s)
# Every target is built (they share their dependencies, which are most of the time).
CARGO_INCREMENTAL=0 cargo fuzz build "${build_args[@]}"
echo "fuzz.sh: built ${#targets[@]} targets in $(( $(date +%s) - start )) s" >&2

triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="$fuzz_target/$triple/release"
work_tmp=$(mktemp -d)
trap 'rm -rf "$work_tmp"' EXIT

runs_args=()
if [ -n "${LODE_FUZZ_RUNS:-}" ]; then
  if ! [[ "$LODE_FUZZ_RUNS" =~ ^[0-9]+$ ]] || [ "$LODE_FUZZ_RUNS" -eq 0 ]; then
    echo "fuzz.sh: LODE_FUZZ_RUNS must be a positive number of executions" >&2
    exit 2
  fi
  runs_args=(-runs="$LODE_FUZZ_RUNS")
fi

printf '\n%-20s %8s %12s %10s %8s %8s %22s %8s\n' target seconds execs exec/s cov corpus "last new cov (exec #)" crashes
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/seeds/$t"
  log="$work_tmp/$t.log"
  rc=0
  t_start=$(date +%s)
  # Each target gets its own temp dir: the query and ABCI targets open a RocksDB application there.
  TMPDIR="$work_tmp" "$bin_dir/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" \
    -max_total_time="$seconds" "${runs_args[@]}" -print_final_stats=1 -timeout=20 \
    -rss_limit_mb="${LODE_FUZZ_RSS_MB:-4096}" -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - t_start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
  corpus=$(grep -oE 'corp: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
  last_new=$(grep -E '^#[0-9]+[[:space:]]+(NEW|REDUCE)' "$log" | tail -n 1 | grep -oE '^#[0-9]+' | tr -d '#' || true)
  crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -newer "$log" 2>/dev/null | wc -l)
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes="rc=$rc"
  fi
  printf '%-20s %8s %12s %10s %8s %8s %22s %8s\n' "$t" "$took" "${execs:-?}" "${speed:-?}" "${cov:-?}" \
    "${corpus:-?}" "${last_new:-none}" "$crashes"
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "--- $t failed (exit $rc); the end of its log:" >&2
    tail -n 40 "$log" >&2
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz.sh: a target crashed; its input is in fuzz/artifacts/<target>/ (replay: the target binary with that file)" >&2
  exit 1
fi
