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
export V URL now WORK
# measure LABEL CMD...: wall and CPU (user + sys, children included) seconds of CMD.
measure() {
  local label=$1; shift
  local TIMEFORMAT="%R %U %S"
  { time "$@" >"$WORK/last.json" 2>"$WORK/stderr.txt" || { cat "$WORK/last.json" "$WORK/stderr.txt"; exit 1; }; } 2>"$WORK/time.txt"
  read -r wall user sys <"$WORK/time.txt"
  printf '  %-44s %7.3f s wall %7.3f s CPU\n' "$label" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')"
}

state="$WORK/state" dir="$WORK/plugins"
rm -rf "$state" "$dir"
export state dir
"$V" pin --state "$state" --url "$URL" --root "$ROOT" --now "$now" >/dev/null

echo "go verifier, $RELEASES-release registry served on 127.0.0.1 by python3 -m http.server ($(nproc) cores, $(uname -m))"
measure "refresh (root walk + registry.json)" "$V" refresh --state "$state" --url "$URL" --now "$now"
# Cold install: empty metadata cache (tree nodes and the plugin document fetched and checked).
measure "install plugin-00500@^1.0, cold cache" "$V" install --state "$state" --url "$URL" --dir "$dir" --spec "plugin-00500@^1.0" --now "$now"
grep -q '"version":"1.0.9"' "$WORK/last.json" || { echo "unexpected install result: $(cat "$WORK/last.json")"; exit 1; }
# 100 more installs (one process each, tree root cached), then verify of the installed plugins.
measure "100 installs (one process each)" bash -c 'for i in $(seq 0 99); do
  "$V" install --state "$state" --url "$URL" --dir "$dir" --spec "$(printf "plugin-%05d" "$i")" --now "$now" >/dev/null || exit 1
done'
measure "verify of 101 installed plugins" "$V" verify --state "$state" --dir "$dir" --now "$now"
python3 -c "import json,sys; n = len(json.load(open(sys.argv[1]))['plugins']); assert n == 101, n" "$WORK/last.json"
