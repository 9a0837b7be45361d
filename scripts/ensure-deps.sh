#!/usr/bin/env bash
# Installs the system packages Lode's build needs, only when they are missing, so that ./scripts/run.sh and
# ./scripts/test.sh work on a fresh Debian/Ubuntu machine:
#   - libclang (rocksdb's bindgen loads libclang.so)  -> apt-get install libclang-dev
#   - a C++ compiler (rocksdb itself is C++)           -> apt-get install g++
# With --browser (scripts/test.sh passes it), also what the explorer's browser test drives:
#   - Debian's Chromium and ChromeDriver               -> apt-get install chromium chromium-driver
# protoc is not needed: protobufs are compiled with protox.
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

have_libclang() {
  local dir
  for dir in ${LIBCLANG_PATH:-} /usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib /usr/lib64 /usr/local/lib; do
    if compgen -G "$dir/libclang.so" >/dev/null || compgen -G "$dir/libclang-*.so" >/dev/null; then
      return 0
    fi
  done
  return 1
}

browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    *) echo "ensure-deps: unknown argument $arg (expected --browser)" >&2; exit 2 ;;
  esac
done

missing=()
have_libclang || missing+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
if [ "$browser" -eq 1 ]; then
  command -v chromium >/dev/null 2>&1 || [ -x "${LODE_CHROMIUM:-/nonexistent}" ] || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || [ -x "${LODE_CHROMEDRIVER:-/nonexistent}" ] || missing+=(chromium-driver)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "ensure-deps: installing ${missing[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: apt-get not found; install ${missing[*]} (libclang and a C++ compiler) by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have empty package lists; refresh them only if the first attempt fails.
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
