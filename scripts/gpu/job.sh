#!/usr/bin/env bash
# Jobs end to end on a GPU provider: a local devnet (`lode testnet init` + `lode start`, one OS process per
# validator), one provider daemon (`lode provider run --backend cuda`) and, for each size n, `lode job submit
# --wait` of an n×n by n×n int8 job: upload, match, fetch, compute on the GPU, commit, sampled reveal,
# verification by the validators, settlement, download of C and the consumer's Freivalds check over all of
# it. Prints what `lode job submit` prints (each step with its seconds since the start) and the provider's
# `computed in` line. Exits non-zero when a job does not settle or the consumer's check fails.
#
# Uses `$LODE`, else `.gpu/lode` when scripts/gpu/stage.sh put it there (GPU machines without Rust), else
# builds it.
# Sizes over the chain's default `compute.max_k` (4096) raise it in this devnet's genesis and take 2×2 tiles.
#
# Usage: [BACKEND=cuda|cpu|auto] [VALIDATORS=4] [BASE_PORT=29088] [DEADLINE=600] [KEEP=1] [LODE=path/to/lode] \
#            scripts/gpu/job.sh [sizes...]
#        (default sizes: 4096 8192; BACKEND=cpu runs the same path on a machine without a GPU; DEADLINE is the
#        job's blocks from the match to the commit: empty blocks come every 150 ms here, and the chain's default
#        of 100 is too short for the provider's hashing and storing of an 8192² C on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/../.."
backend="${BACKEND:-cuda}"
validators="${VALIDATORS:-4}"
base_port="${BASE_PORT:-29088}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(4096 8192)

if [ -n "${LODE:-}" ]; then
    lode="$LODE"
elif [ -x .gpu/lode ]; then
    lode="$PWD/.gpu/lode"
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lode-target}"
    cargo build --release -p lode-node --bin lode
    lode="$CARGO_TARGET_DIR/release/lode"
fi

work="$(mktemp -d -t lode-gpu-job.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "job.sh: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# An n×n .npy matrix of random int8 (C order), written without numpy: the v1.0 header padded to 64 bytes.
npy_i8() {
    local n=$1 out=$2
    local dict="{'descr': '|i1', 'fortran_order': False, 'shape': ($n, $n), }"
    local pad=$(( 64 - (10 + ${#dict} + 1) % 64 ))
    { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(( (${#dict} + pad + 1) % 256 )))"
      printf "\\x$(printf %02x $(( (${#dict} + pad + 1) / 256 )))"
      printf '%s%*s\n' "$dict" "$pad" ''
      head -c $(( n * n )) /dev/urandom; } > "$out"
}

max=4096
for n in "${sizes[@]}"; do [ "$n" -gt "$max" ] && max=$n; done
"$lode" testnet init --validators "$validators" --out "$work/net" --base-port "$base_port" \
    --timeout-propose-ms 300 > "$work/init.txt"
node="$(sed -n 's/.*grpc \(http[^ ]*\).*/\1/p' "$work/init.txt" | head -1 || true)"
for g in "$work"/net/node*/genesis.json; do
    sed -i -E "s/(\"max_k\": )[0-9]+/\1$max/" "$g"
    grep -q "\"max_k\": $max" "$g" || { echo "job.sh: could not set compute.max_k in $g" >&2; exit 1; }
done
for ((i = 0; i < validators; i++)); do
    "$lode" start --home "$work/net/node$i" > "$work/node$i.log" 2>&1 &
    pids+=($!)
done
home="$work/net/node0"
for _ in $(seq 60); do
    h="$("$lode" query status --node "$node" -o json 2>/dev/null | sed -n 's/.*"latest_height": *"\{0,1\}\([0-9]*\).*/\1/p' | head -1 || true)"
    [ "${h:-0}" -ge 2 ] && break
    sleep 1
done
[ "${h:-0}" -ge 2 ] || { echo "job.sh: the devnet did not reach height 2" >&2; tail -5 "$work/node0.log" >&2; exit 1; }
echo "devnet: $validators validators, gRPC $node, height $h, compute.max_k $max"

"$lode" provider probe --backend "$backend" || true
"$lode" provider run --home "$home" --from dev1 --node "$node" --backend "$backend" --ask 5 --bond 1000000 \
    --max-job-cu 1000000 --state-dir "$work/provider" > "$work/provider.out" 2> "$work/provider.log" &
pids+=($!)
for _ in $(seq 60); do grep -q "ready at height" "$work/provider.out" 2>/dev/null && break; sleep 1; done
grep -q "ready at height" "$work/provider.out" || { echo "job.sh: the provider did not start" >&2; tail -5 "$work/provider.log" >&2; exit 1; }
head -2 "$work/provider.out"

status=0
for n in "${sizes[@]}"; do
    echo "== ${n}³ (backend $backend)"
    npy_i8 "$n" "$work/A$n.npy"
    npy_i8 "$n" "$work/B$n.npy"
    # One sampled tile's reveal carries 2·T·k input bytes and must fit in max_tx_bytes (64 KiB): T = 4 up to
    # k = 4096, T = 2 above.
    tile=4
    [ "$n" -le 4096 ] || tile=2
    if ! "$lode" job submit --home "$home" --from dev0 --node "$node" --a "$work/A$n.npy" --b "$work/B$n.npy" \
        --tile "$tile" --deadline "${DEADLINE:-600}" --max-price 5 --wait --out "$work/C$n.npy" --timeout 1800; then
        echo "job.sh: the ${n}³ job failed" >&2
        status=1
    fi
    grep "computed in" "$work/provider.out" | tail -1
    rm -f "$work/A$n.npy" "$work/B$n.npy" "$work/C$n.npy"
done
[ "$status" = 0 ] || { tail -20 "$work/provider.log" >&2; KEEP=1; }
exit $status
