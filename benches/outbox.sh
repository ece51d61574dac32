#!/usr/bin/env bash
# The outbox's two figures, in one run against Postfix's smtp-sink on
# 127.0.0.1, each with its peer measured in the same run:
#   1. accepted messages per second into the outbox (`serve --outbox`,
#      POST /v1/send answered 202 after a synchronous commit), with wrk;
#      peer: the same daemon without an outbox, sending each request into
#      smtp-sink before it answers (what a caller had before);
#   2. end-to-end delivered per second: the messages of step 1, delivered
#      from the outbox into smtp-sink by a daemon started on that outbox;
#      peer: Postfix's smtp-source blasting the same count into the sink.
# While messages are accepted the profile is throttled to one a minute, so
# that step 1 measures accepting alone; step 2's daemon has
# `throttle: {concurrency: CONCURRENCY}`.
# Usage: benches/outbox.sh [SECONDS] [CONCURRENCY]. Needs Debian's wrk and
# postfix (smtp-sink, smtp-source); see README, Performance.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-10}
CONCURRENCY=${2:-16}
for tool in smtp-sink smtp-source wrk; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null 2>&1 || {
    echo "benches/outbox.sh needs $tool: apt-get install wrk postfix (see README, Performance)" >&2
    exit 2
  }
done

WORK=target/bench-outbox
rm -rf "$WORK" && mkdir -p "$WORK"
cargo build --release --quiet
MAILRULES=target/release/mailrules
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

PORT=$(free_port)
smtp-sink -u nobody 127.0.0.1:"$PORT" 1000 &
PIDS=($!)
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
  sleep 0.1
done
cat > "$WORK/sink.yaml" <<YAML
smtp: {host: 127.0.0.1, port: $PORT, security: none, allow_insecure: true}
YAML
# The batch benchmark's configuration, throttled two ways.
throttled() {
  sed "s/^    reply_to: .*/&\n    throttle: $1/" benches/batch/config.yaml > "$2"
}
throttled "{concurrency: 1, per_minute: 1}" "$WORK/accepting.yaml"
throttled "{concurrency: $CONCURRENCY}" "$WORK/delivering.yaml"

# start_daemon CONFIG LOG [ARGS...]: sets URL and DAEMON.
start_daemon() {
  local config=$1 log=$2
  shift 2
  "$MAILRULES" --config "$config" serve --listen 127.0.0.1:0 --watch off \
    --transport-override "$WORK/sink.yaml" --log-format json "$@" > "$log.address" 2> "$log" &
  DAEMON=$!
  PIDS+=("$DAEMON")
  for _ in $(seq 1 100); do
    grep -q listening "$log.address" 2>/dev/null && break
    sleep 0.1
  done
  URL=$(sed -n 's/^mailrules serve: listening on //p' "$log.address")
}
stop_daemon() { kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; }
rate() { sed -n 's/^Requests\/sec: *//p'; }
checked_wrk() {
  wrk -t2 -c16 -d"${SECONDS_EACH}s" -s benches/outbox/send.lua "$1/v1/send" > "$WORK/wrk.out" 2> "$WORK/wrk.err"
  if grep -q "unexpected status\|Non-2xx" "$WORK/wrk.out" "$WORK/wrk.err"; then
    cat "$WORK/wrk.out" "$WORK/wrk.err" >&2
    exit 1
  fi
  rate < "$WORK/wrk.out"
}
counts() { python3 -c 'import json, sys, urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1] + "/v1/messages?limit=0"))["counts"][sys.argv[2]])' "$1" "$2"; }

echo "== POST /v1/send without an outbox (sent before the answer), wrk -t2 -c16 -d${SECONDS_EACH}s"
start_daemon benches/batch/config.yaml "$WORK/direct.log"
DIRECT=$(checked_wrk "$URL")
stop_daemon

echo "== POST /v1/send into the outbox (committed before the answer)"
start_daemon "$WORK/accepting.yaml" "$WORK/accepting.log" --outbox "$WORK/outbox.db"
ACCEPTED=$(checked_wrk "$URL")
QUEUED=$(counts "$URL" queued)
stop_daemon

echo "== delivering the $QUEUED queued messages from the outbox, concurrency $CONCURRENCY"
start=$(date +%s.%N)
start_daemon "$WORK/delivering.yaml" "$WORK/delivering.log" --outbox "$WORK/outbox.db"
while [ "$(counts "$URL" queued)" != 0 ] || [ "$(counts "$URL" sending)" != 0 ]; do sleep 0.05; done
end=$(date +%s.%N)
SENT=$(counts "$URL" sent)
DEAD=$(counts "$URL" dead)
stop_daemon
[ "$DEAD" = 0 ] || { echo "$DEAD messages dead" >&2; exit 1; }

echo "== smtp-source: $SENT messages of 2048 bytes, $CONCURRENCY sessions"
source_start=$(date +%s.%N)
smtp-source -s "$CONCURRENCY" -m "$SENT" -l 2048 -f billing@bench.example \
  -t customer@example.com 127.0.0.1:"$PORT"
source_end=$(date +%s.%N)

python3 - "$DIRECT" "$ACCEPTED" "$SENT" "$start" "$end" "$source_start" "$source_end" <<'PY'
import sys
direct, accepted, sent = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
start, end, source_start, source_end = map(float, sys.argv[4:])
delivered = sent / (end - start)
source = sent / (source_end - source_start)
print()
print("| figure | per second | ratio to its peer |")
print("|---|---|---|")
print(f"| accepted into the outbox (durable, 202) | {accepted:,.0f} | {accepted / direct:.2f}x synchronous /v1/send |")
print(f"| peer: POST /v1/send sent before answering, no outbox | {direct:,.0f} | 1.00 |")
print(f"| delivered from the outbox into smtp-sink ({sent:,} messages) | {delivered:,.0f} | {delivered / source:.2f}x smtp-source |")
print(f"| peer: Postfix smtp-source into smtp-sink | {source:,.0f} | 1.00 |")
PY
