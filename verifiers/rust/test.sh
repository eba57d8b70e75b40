#!/usr/bin/env bash
# `cargo test` of the Rust verifier, wherever cargo lives: on PATH, in ~/.cargo/bin (rustup), or
# Debian's package (installed by scripts/setup-system.sh). Debian bookworm's cargo 1.65 predates
# the sparse crates.io protocol (stable from 1.68); it is enabled there through cargo's unstable
# flag, so no git checkout of the crates.io index is needed. Cargo.lock pins crate versions that
# build with rustc 1.63 (rust-version in Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")"
cargo=$(command -v cargo || true)
[ -n "$cargo" ] || cargo="$HOME/.cargo/bin/cargo"
if [ ! -x "$cargo" ]; then
  echo "test-rust: cargo not found; run scripts/setup-system.sh (installs Debian's cargo)" >&2
  exit 2
fi
minor=$("$cargo" --version | sed -E 's/^cargo 1\.([0-9]+).*/\1/')
if [ "$minor" -lt 68 ]; then
  export RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_SPARSE_REGISTRY=true
fi
export CARGO_REGISTRIES_CRATES_IO_PROTOCOL=sparse
exec "$cargo" test --locked "$@"
