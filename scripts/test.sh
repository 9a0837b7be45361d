#!/usr/bin/env bash
# The whole test suite: every crate's unit and integration tests, including the whole-system tests that run
# `lode` processes on loopback. Extra arguments go to the test runner (e.g. a test-name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lode-target}"
# The crash-point tests need `lode` built with the test-only `failpoints` feature; they run second, on their own.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace "$@"
  exec cargo nextest run --workspace --features lode-node/failpoints -E 'test(commit_path)' "$@"
else
  echo "test.sh: cargo-nextest not installed; using cargo test" >&2
  cargo test --workspace "$@"
  exec cargo test --workspace --features lode-node/failpoints commit_path "$@"
fi
