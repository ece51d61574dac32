#!/usr/bin/env bash
# The daemon's two figures, in one run against one `mailrules serve`:
#   1. reload latency: a file renamed into the config directory (as an
#      editor saves) until the new generation serves, over CHANGES changes:
#      p50 and p95, against the debounce window (the target is p95 under
#      the window plus 100 ms);
#   2. POST /v1/explain requests per second with wrk, against GET /healthz
#      on the same daemon (the HTTP stack's own ceiling) as the peer.
# Usage: benches/serve.sh [CHANGES] [SECONDS]. Needs Debian's wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

CHANGES=${1:-200}
SECONDS_EACH=${2:-10}
DEBOUNCE_MS=200
command -v wrk >/dev/null 2>&1 || {
  echo "benches/serve.sh needs wrk: apt-get install wrk (see README, Performance)" >&2
  exit 2
}

WORK=target/bench-serve
rm -rf "$WORK" && mkdir -p "$WORK"
cargo build --release --quiet
cp -r examples/acme/config "$WORK/config"

target/release/mailrules --config "$WORK/config" serve --listen 127.0.0.1:0 \
  --debounce "${DEBOUNCE_MS}ms" --log-format json > "$WORK/address" 2> "$WORK/daemon.log" &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q listening "$WORK/address" 2>/dev/null && break
  sleep 0.1
done
URL=$(sed -n 's/^mailrules serve: listening on //p' "$WORK/address")

echo "== reload latency: $CHANGES renames, debounce ${DEBOUNCE_MS} ms"
python3 benches/serve/reload_latency.py "$URL" "$WORK/config" "$CHANGES" "$DEBOUNCE_MS"

echo "== requests per second, wrk -t2 -c64 -d${SECONDS_EACH}s"
# checked_rate ARGS...: wrk's requests/s; a run with any error answer
# (wrk's "Non-2xx" line) or socket error is invalid, not a figure.
checked_rate() {
  wrk -t2 -c64 -d"${SECONDS_EACH}s" "$@" > "$WORK/wrk.out"
  if grep -q "Non-2xx\|Socket errors" "$WORK/wrk.out"; then
    cat "$WORK/wrk.out" >&2
    exit 1
  fi
  sed -n 's/^Requests\/sec: *//p' "$WORK/wrk.out"
}
HEALTHZ=$(checked_rate "$URL/healthz")
EXPLAIN=$(checked_rate -s benches/serve/explain.lua "$URL/v1/explain")
python3 - "$HEALTHZ" "$EXPLAIN" <<'PY'
import sys
healthz, explain = float(sys.argv[1]), float(sys.argv[2])
print(f"GET /healthz       {healthz:>10,.0f} req/s (peer: the HTTP stack alone)")
print(f"POST /v1/explain   {explain:>10,.0f} req/s = {explain / healthz:.2f}x /healthz"
      f" (target: 20,000 req/s: {'met' if explain >= 20000 else 'NOT met'})")
PY
