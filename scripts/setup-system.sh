#!/usr/bin/env bash
# Installs the system tools the tests and the sample builds need, only if missing:
# python3-venv, minisign (signature interop), clang + lld + wasi-libc (C -> wasm32-wasi
# sample plugins), cargo + rustc (the Rust verifier; Debian's when no rustup toolchain is
# present), chromium (the catalog page's browser tests drive Debian's Chromium headless
# through Playwright's Python package; no browser is downloaded) and, where Go is available,
# actionlint (workflow lint).
set -euo pipefail

need=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v minisign >/dev/null || need+=(minisign)
command -v clang >/dev/null || need+=(clang)
command -v wasm-ld >/dev/null || need+=(lld)
[ -e /usr/include/wasm32-wasi/stdio.h ] || need+=(wasi-libc)
command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] || need+=(cargo)
compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null \
  || need+=(libclang-rt-14-dev-wasm32)
command -v chromium >/dev/null || need+=(chromium)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Go, for the Go verifier (verifiers/go; `make test-go`). Its go.mod names the toolchain it builds
# with; any Go >= 1.21 fetches that toolchain itself from the Go module proxy (GOTOOLCHAIN=auto).
# Debian's golang-go is used only when it is at least 1.21 (bookworm ships 1.19, which cannot).
go_ok() { # go_ok BIN: BIN runs and is Go >= 1.21
  local v
  v="$("$1" env GOVERSION 2>/dev/null)" || return 1
  v="${v#go}"
  [ "${v%%.*}" -gt 1 ] || { v="${v#1.}"; [ "${v%%.*}" -ge 21 ]; }
}
if ! go_ok "$(command -v go || echo /usr/local/go/bin/go)"; then
  candidate="$(apt-cache policy golang-go 2>/dev/null | awk '/Candidate:/ {print $2}')"
  minor="$(printf '%s' "$candidate" | sed -n 's/^[0-9]*:*1\.\([0-9]*\).*/\1/p')"
  if [ -n "$minor" ] && [ "$minor" -ge 21 ]; then
    echo "setup: installing golang-go $candidate"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq golang-go >/dev/null
  else
    echo "setup: Go >= 1.21 is needed for the Go verifier and Debian's golang-go is ${candidate:-unavailable};" \
      "install Go from https://go.dev/dl/ into /usr/local/go (docs/client-go.md); make test-go stops until then"
  fi
fi

# actionlint is optional (its tests skip without it); it comes from the Go module proxy.
if ! command -v actionlint >/dev/null && [ ! -x "${GOPATH:-$HOME/go}/bin/actionlint" ]; then
  if command -v go >/dev/null; then
    echo "setup: installing actionlint with go install"
    go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.7 >/dev/null 2>&1 \
      || echo "setup: actionlint could not be installed; its tests will be skipped"
  fi
fi
