#!/usr/bin/env bash
# One-time, idempotent set-up of the SBOM benchmark (`cargo bench --bench sbom`):
#
# 1. a real workspace with ~180 linked crates from crates.io, in target/bench-sbom/ws (git-ignored
#    by this repository; it is its own git repository, because xrelease releases a clean tree),
#    pinned by bench/sbom/Cargo.lock so every machine measures the same resolve;
# 2. its release build with the xrelease built from this checkout, once (again when either
#    changes): `xrelease release v0.1.0 --dry-run --quiet` writes dist/v0.1.0/manifest.json with
#    the build records the SBOM stage reads, and the SBOM the bench compares its own with;
# 3. cargo-cyclonedx, the tool the stage is compared with, if it is not installed yet.
#
# BENCH_QUICK=1 (CI) sets up a small workload instead, in target/bench-sbom/quick (two
# dependencies, pinned by bench/sbom/quick.Cargo.lock), and installs nothing: the bench then
# leaves cargo-cyclonedx out unless it is installed. It checks that the bench still runs.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
quick="${BENCH_QUICK:-}"
if [ -n "$quick" ]; then ws="$repo/target/bench-sbom/quick"; else ws="$repo/target/bench-sbom/ws"; fi
target=x86_64-unknown-linux-gnu
mkdir -p "$ws/src"

echo "setup: building xrelease (release profile)"
cargo build --release --locked --quiet --bin xrelease --manifest-path "$repo/Cargo.toml"
xrelease="${CARGO_TARGET_DIR:-$repo/target}/release/xrelease"

# The workspace's files are rewritten every time (same bytes, so git sees no change unless this
# script changed them); a change is committed, which makes the release below run again.
if [ -n "$quick" ]; then
  cat >"$ws/Cargo.toml" <<'TOML'
[package]
name = "sbom-bench-app"
version = "0.1.0"
edition = "2024"
description = "The SBOM benchmark's quick workload: a small dependency tree"
license = "MIT OR Apache-2.0"
publish = false

[workspace]

[dependencies]
itoa = "1"
serde_json = "1"
TOML
  cat >"$ws/src/main.rs" <<'RUST'
fn main() {
    let n = std::env::args().count();
    println!("{} {}", itoa::Buffer::new().format(n), serde_json::json!({ "args": n }));
}
RUST
  cp "$repo/bench/sbom/quick.Cargo.lock" "$ws/Cargo.lock"
else
cat >"$ws/Cargo.toml" <<'TOML'
[package]
name = "sbom-bench-app"
version = "0.1.0"
edition = "2024"
description = "The SBOM benchmark's workload: an application with a realistic dependency tree"
license = "MIT OR Apache-2.0"
publish = false

# Its own workspace root, not a member of the xrelease workspace it sits under.
[workspace]

[dependencies]
anyhow = "1"
axum = "0.8"
base64 = "0.22"
chrono = { version = "0.4", features = ["serde"] }
clap = { version = "4", features = ["derive", "env"] }
dashmap = "6"
futures = "0.3"
indicatif = "0.18"
itertools = "0.14"
rand = "0.8"
rayon = "1"
regex = "1"
reqwest = { version = "0.12", default-features = false, features = ["rustls-tls", "json", "gzip", "stream"] }
semver = "1"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
sha2 = "0.10"
tempfile = "3"
time = { version = "0.3", features = ["formatting", "parsing", "serde"] }
tokio = { version = "1", features = ["full"] }
toml = "0.9"
tracing = "0.1"
tracing-subscriber = { version = "0.3", features = ["env-filter", "json"] }
url = "2"
uuid = { version = "1", features = ["v4", "serde"] }
walkdir = "2"
TOML

cat >"$ws/src/main.rs" <<'RUST'
use clap::Parser;

/// Stands in for an application: what matters to the benchmark is its dependency tree.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Where to fetch from.
    #[arg(long, default_value = "https://example.org/")]
    url: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = url::Url::parse(&args.url)?;
    println!("{url}");
    Ok(())
}
RUST

cp "$repo/bench/sbom/Cargo.lock" "$ws/Cargo.lock"
fi

# The provenance names a GitHub repository, and preflight requires one: the workload's own.
cat >"$ws/release.toml" <<'TOML'
[release]
targets = ["x86_64-unknown-linux-gnu"]

[github]
repository = "xrelease/sbom-bench-workload"
TOML

printf '/target\n/dist\n*.cdx.json\n' >"$ws/.gitignore"

cd "$ws"
[ -d .git ] || git init -q -b main
git add -A
if ! git diff --cached --quiet || ! git rev-parse -q --verify HEAD >/dev/null; then
  git -c user.email=bench@xrelease -c user.name=bench commit -q -m "SBOM benchmark workload"
  echo "setup: committed the workload in $ws"
fi

head="$(git rev-parse HEAD)"
manifest="$ws/dist/v0.1.0/manifest.json"
if [ -f "$manifest" ] && grep -q "\"commit\": \"$head\"" "$manifest" && [ "$manifest" -nt "$xrelease" ]; then
  echo "setup: dist/v0.1.0 is already the release of $head by this xrelease"
else
  echo "setup: release build of the workload (once; a few minutes)"
  start=$(date +%s)
  rm -rf "$ws/dist/v0.1.0"
  "$xrelease" release v0.1.0 --dry-run --quiet
  echo "setup: release build took $(($(date +%s) - start)) s"
fi

linked=$(cargo tree --locked -e normal,no-proc-macro --prefix none --target "$target" |
  awk 'NF { print $1, $2 }' | sort -u | wc -l)
packages=$(cargo metadata --locked --format-version 1 |
  python3 -c 'import json, sys; print(len(json.load(sys.stdin)["packages"]))')
echo "setup: workload links $((linked - 1)) crates besides itself for $target; cargo metadata lists $packages packages"
if [ -z "$quick" ] && [ "$((linked - 1))" -lt 150 ]; then
  echo "setup: fewer than 150 linked dependencies: the benchmark would not be representative" >&2
  exit 1
fi

if [ -n "$quick" ]; then
  echo "setup: quick workload; cargo-cyclonedx is $(command -v cargo-cyclonedx >/dev/null && echo installed || echo 'not installed: the bench leaves it out')"
elif command -v cargo-cyclonedx >/dev/null; then
  echo "setup: $(cargo cyclonedx --version)"
else
  echo "setup: installing cargo-cyclonedx (once; several minutes)"
  start=$(date +%s)
  cargo install --locked --quiet cargo-cyclonedx
  echo "setup: cargo install cargo-cyclonedx took $(($(date +%s) - start)) s"
fi
