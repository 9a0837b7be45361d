#!/usr/bin/env bash
# Runs Lode. Until the devnet exists, this initialises a fresh one-validator home in a new temporary directory
# (printed below) and serves the application over the ABCI socket there, in release mode, until Ctrl-C.
# Point a CometBFT v0.38 node at it with proxy_app = "tcp://127.0.0.1:26658".
# Environment: LODE_HOME to use (and keep) a specific home, LODE_ABCI_LISTEN to change the address.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lode-target}"
cargo build --release -p lode-node --bin lode
lode="$CARGO_TARGET_DIR/release/lode"

home="${LODE_HOME:-$(mktemp -d "${TMPDIR:-/tmp}/lode-home.XXXXXX")}"
echo "lode home: $home"
if [ ! -f "$home/config.toml" ]; then
  "$lode" init --home "$home"
fi
exec "$lode" abci --home "$home" "$@"
