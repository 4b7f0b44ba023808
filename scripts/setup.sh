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
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# Container image tests: a loopback OCI registry (distribution 2.8.2) and htpasswd for its auth.
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
# The generated install.sh: linted as POSIX sh, and run under dash as well as sh.
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v dash >/dev/null || missing+=(dash)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Independent checkers the tests run over xrelease's output (schema validators, verifiers).
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt

# The loopback Sigstore (Fulcio, Rekor) and sigstore-js's verifier for the keyless tests:
# reinstalled only when package-lock.json is newer than the last install.
sigstore_js=tests/support/sigstore
if [ ! -f "$sigstore_js/node_modules/.package-lock.json" ] ||
  [ "$sigstore_js/package-lock.json" -nt "$sigstore_js/node_modules/.package-lock.json" ]; then
  echo "setup: npm ci in $sigstore_js"
  (cd "$sigstore_js" && npm ci --no-audit --no-fund --loglevel=error)
fi

# rustup's aarch64 std where rustup can download it; Debian's rustc otherwise (doctor decides).
# The static musl targets container images are made from (the image tests build them).
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
cargo xtask doctor --fix
