#!/usr/bin/env bash
# Rust verifier benchmark (not a test): install from a 10,000-release format-2 registry and
# `verify` of 100 installed plugins, over file:// (the verifier's own work: hashing, signatures,
# parsing, fsynced writes). One run; prints one line per figure.
#   bench/rust_bench.sh [WORKDIR] [--site SITE]   (--site: measure an existing format-2 site)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cargo=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
cd "$here/../verifiers/rust"
"$cargo" build --release --locked --example bench >&2
exec target/release/examples/bench "${@:-${TMPDIR:-/tmp}/registry-verifier-bench}"
