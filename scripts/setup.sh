#!/usr/bin/env bash
# One-time, idempotent set-up of a Debian/Ubuntu machine with rustup for this repository:
# the cross toolchain and qemu for linux-arm64, and this machine's [target.*] overrides
# (written by `xrelease doctor --fix` to release.local.toml, which is never committed).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

missing=()
command -v git >/dev/null || missing+=(git)
command -v openssl >/dev/null || missing+=(openssl)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Independent checkers the tests run over xrelease's output (schema validators, verifiers).
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt

# rustup's aarch64 std where rustup can download it; Debian's rustc otherwise (doctor decides).
cargo xtask doctor --fix
