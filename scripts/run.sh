#!/usr/bin/env bash
# Runs Lode: builds the release binary and starts `lode devnet`, a local 4-validator network (one OS process per
# validator) with funded dev accounts whose keys it prints, until Ctrl-C. The devnet lives in ~/.lode-devnet
# (reused across runs); arguments are passed on, e.g. `./scripts/run.sh --reset` or `--validators 1`.
# Node 0 serves gRPC on 127.0.0.1:9090, the default of `lode tx` and `lode query`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lode-target}"
cargo build --release -p lode-node --bin lode
exec "$CARGO_TARGET_DIR/release/lode" devnet "$@"
