#!/usr/bin/env bash
# Batch throughput: N messages of about 2 KB into Postfix's smtp-sink on
# 127.0.0.1, three ways in the same run:
#   1. mailrules send --batch (resolve + render + send, pooled connections)
#   2. Postfix's smtp-source blasting the same count (its own 2 KB filler)
#   3. msmtp, one process per message (the usual "sendmail" replacement)
# and the rates as ratios. Usage: benches/batch.sh [COUNT] [CONCURRENCY]
# (MSMTP_COUNT=N sets msmtp's count; default 1000, its rate is what counts).
# Needs Debian's postfix (smtp-sink, smtp-source) and msmtp; see README.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${1:-10000}
CONCURRENCY=${2:-20}
MSMTP_COUNT=${MSMTP_COUNT:-1000}  # msmtp is slow: its rate over fewer messages
for tool in smtp-sink smtp-source msmtp; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null 2>&1 || {
    echo "benches/batch.sh needs $tool: apt-get install postfix msmtp (see README, Performance)" >&2
    exit 2
  }
done

WORK=target/bench-batch
rm -rf "$WORK" && mkdir -p "$WORK"
cargo build --release --quiet
MAILRULES=target/release/mailrules

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# -u: smtp-sink refuses to run as root without a user to switch to.
smtp-sink -u nobody 127.0.0.1:"$PORT" 1000 &
SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
  sleep 0.1
done

cat > "$WORK/sink.yaml" <<YAML
smtp: {host: 127.0.0.1, port: $PORT, security: none, allow_insecure: true}
YAML
python3 - "$COUNT" > "$WORK/batch.jsonl" <<'PY'
import json, sys
for n in range(1, int(sys.argv[1]) + 1):
    print(json.dumps({
        "id": f"inv-{n}", "administration": "bench", "user": "batch",
        "process": "invoice", "to": [f"Customer {n} <customer{n}@example.com>"],
        "data": {"number": f"2026-{n:05}", "customer": f"Customer {n}",
                 "customer_number": f"C{n:05}", "date": "2026-12-01",
                 "amount": f"EUR {n * 7 % 10000}.{n % 100:02}"},
    }))
PY
# One rendered message for msmtp to send again and again.
head -1 "$WORK/batch.jsonl" | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["data"]))' > "$WORK/one.json"
"$MAILRULES" preview -c benches/batch/config.yaml -a bench -u batch -p invoice \
  --to customer@example.com --data "$WORK/one.json" 2>/dev/null > "$WORK/one.eml"

now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1 / ($3 - $2):.0f}')"; }

echo "== mailrules send --batch: $COUNT messages, concurrency $CONCURRENCY"
start=$(now)
"$MAILRULES" send -c benches/batch/config.yaml --transport-override "$WORK/sink.yaml" \
  --batch "$WORK/batch.jsonl" --results "$WORK/results.jsonl" --concurrency "$CONCURRENCY"
end=$(now)
sent=$(grep -c '"status":"sent"' "$WORK/results.jsonl")
[ "$sent" -eq "$COUNT" ] || { echo "only $sent of $COUNT sent" >&2; exit 1; }
mailrules_rate=$(rate "$COUNT" "$start" "$end")

echo "== smtp-source: $COUNT messages of 2048 bytes, $CONCURRENCY sessions"
start=$(now)
smtp-source -s "$CONCURRENCY" -m "$COUNT" -l 2048 -f billing@bench.example \
  -t customer@example.com 127.0.0.1:"$PORT"
end=$(now)
source_rate=$(rate "$COUNT" "$start" "$end")

echo "== msmtp: $MSMTP_COUNT messages, one process each"
start=$(now)
for _ in $(seq 1 "$MSMTP_COUNT"); do
  msmtp --host=127.0.0.1 --port="$PORT" --tls=off --auth=off \
    --from=billing@bench.example customer@example.com < "$WORK/one.eml"
done
end=$(now)
msmtp_rate=$(rate "$MSMTP_COUNT" "$start" "$end")

python3 - "$mailrules_rate" "$source_rate" "$msmtp_rate" <<'PY'
import sys
mailrules, source, msmtp = map(float, sys.argv[1:])
print()
print("| sender | messages/s | mailrules ÷ sender |")
print("|---|---|---|")
print(f"| mailrules send --batch | {mailrules:.0f} | 1.00 |")
print(f"| smtp-source (Postfix) | {source:.0f} | {mailrules / source:.2f} |")
print(f"| msmtp, one per process | {msmtp:.0f} | {mailrules / msmtp:.1f} |")
print()
print("goals: at least 0.5 of smtp-source:", "met" if mailrules >= source / 2 else "NOT met",
      "; at least 10x msmtp:", "met" if mailrules >= 10 * msmtp else "NOT met")
PY
