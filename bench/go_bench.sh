#!/usr/bin/env bash
# Go verifier benchmark (one run, not a timed test): install from an N-release registry
# (default 10000: 1000 plugins x 10 versions, built by registry-tool build) and `verify` of 100
# installed plugins, through the conformance runner binary (one process per operation, as a host's
# CLI would run it), against the site served on 127.0.0.1.
#
#   bench/go_bench.sh                      # RELEASES=10000 WORK=<tmp> GO=<go binary>
#   WORK=/tmp/vbench bench/go_bench.sh     # reuses $WORK/vsite when it exists
set -euo pipefail
cd "$(dirname "$0")/.."
RELEASES=${RELEASES:-10000}
WORK=${WORK:-$(mktemp -d)}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
PY=${PY:-.venv/bin/python}
mkdir -p "$WORK"

(cd verifiers/go && "$GO" build -o "$WORK/registry-verifier" ./cmd/registry-verifier)
V="$WORK/registry-verifier"
if [ ! -f "$WORK/vsite/site/registry.json" ]; then
  echo "building a $RELEASES-release site (registry-tool build, no smoke run) ..."
  "$PY" bench/verifier_site.py --releases "$RELEASES" --out "$WORK/vsite" >"$WORK/site.json"
  cat "$WORK/site.json"
fi
SITE="$WORK/vsite/site"
ROOT="$WORK/vsite/index/root/1.root.json"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$SITE" "$port" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
URL="http://127.0.0.1:$port/"
for _ in $(seq 50); do python3 -c "import urllib.request; urllib.request.urlopen('${URL}registry.json')" 2>/dev/null && break; sleep 0.1; done

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
secs() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
run() { "$V" "$@" --now "$now" >"$WORK/last.json" || { cat "$WORK/last.json"; exit 1; }; }

state="$WORK/state" dir="$WORK/plugins"
rm -rf "$state" "$dir"
run pin --state "$state" --url "$URL" --root "$ROOT"

t0=$(secs); run refresh --state "$state" --url "$URL"; t1=$(secs)
refresh_s=$(elapsed "$t0" "$t1")

# Cold install: empty metadata cache (tree nodes and the plugin document fetched and checked).
t0=$(secs); run install --state "$state" --url "$URL" --dir "$dir" --spec "plugin-00500@^1.0"; t1=$(secs)
cold_s=$(elapsed "$t0" "$t1")
grep -q '"version":"1.0.9"' "$WORK/last.json" || { echo "unexpected install result: $(cat "$WORK/last.json")"; exit 1; }

# 100 installs (tree root cached by then), then verify of the 100 installed plugins.
t0=$(secs)
for i in $(seq 0 99); do
  run install --state "$state" --url "$URL" --dir "$dir" --spec "$(printf 'plugin-%05d' "$i")"
done
t1=$(secs)
installs_s=$(elapsed "$t0" "$t1")
t0=$(secs); run verify --state "$state" --dir "$dir"; t1=$(secs)
verify_s=$(elapsed "$t0" "$t1")
count=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['plugins']))" "$WORK/last.json")

echo "go verifier, $RELEASES-release registry on 127.0.0.1 ($(nproc) cores, $(uname -m))"
echo "  refresh (root walk + registry.json):       ${refresh_s} s"
echo "  install, cold metadata cache:              ${cold_s} s"
echo "  100 installs, one process each:            ${installs_s} s ($(awk -v t="$installs_s" 'BEGIN { printf "%.1f", t * 10 }') ms per install)"
echo "  verify of $count installed plugins:          ${verify_s} s"
