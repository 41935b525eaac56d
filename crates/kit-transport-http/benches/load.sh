#!/usr/bin/env bash
# HTTP load benchmark: kit-transport-http beside a raw hyper server doing the same JSON work
# (examples/load_server.rs), driven by wrk over loopback, HTTP/1.1 keep-alive, 32 connections.
# Runs alternate (raw, kit, raw-limits, raw, ...) so drift hits all; prints each run and the
# medians. raw-limits is the raw server with the limits a kit Listener sets by default.
# Usage: bash crates/kit-transport-http/benches/load.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds=${1:-3}
seconds=${2:-10}
command -v wrk >/dev/null || { echo "wrk is missing (Debian package wrk)" >&2; exit 1; }
cargo build --release -q -p kit-transport-http --example load_server
bin=target/release/examples/load_server
lua=$(mktemp --suffix .lua)
cat > "$lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"a":1,"b":2}'
wrk.headers["Content-Type"] = "application/json"
LUA
"$bin" raw 127.0.0.1:18091 & raw_pid=$!
"$bin" kit 127.0.0.1:18092 & kit_pid=$!
"$bin" raw-limits 127.0.0.1:18093 & limits_pid=$!
trap 'kill $raw_pid $kit_pid $limits_pid 2>/dev/null; rm -f "$lua"' EXIT
sleep 1
for port in 18091 18092 18093; do
    curl -fsS -X POST -d '{"a":1,"b":2}' "http://127.0.0.1:$port/sum" | grep -q '"v":3' \
        || { echo "server on $port does not answer {\"v\":3}" >&2; exit 1; }
done
results=$(mktemp)
for round in $(seq "$rounds"); do
    for which in raw kit raw-limits; do
        case $which in raw) port=18091 ;; kit) port=18092 ;; raw-limits) port=18093 ;; esac
        out=$(wrk -t2 -c32 -d"${seconds}s" --latency -s "$lua" "http://127.0.0.1:$port/sum")
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        errors=$(grep -c "Non-2xx\|Socket errors" <<<"$out" || true)
        echo "round $round $which: $rps req/s, p99 $p99, error lines $errors"
        echo "$which $rps $p99" >> "$results"
    done
done
python3 - "$results" <<'PY'
import sys, statistics
def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit) and not (unit == "s" and v.endswith(("us", "ms"))):
            return float(v[: -len(unit)]) * f
    return float(v)
rows = [l.split() for l in open(sys.argv[1])]
names = ("raw", "kit", "raw-limits")
med = {w: (statistics.median(float(r[1]) for r in rows if r[0] == w),
           statistics.median(ms(r[2]) for r in rows if r[0] == w)) for w in names}
for w in names:
    print(f"median {w}: {med[w][0]:.0f} req/s, p99 {med[w][1]:.2f} ms")
for base in ("raw", "raw-limits"):
    print(f"kit/{base}: throughput {med['kit'][0]/med[base][0]:.3f}, p99 {med['kit'][1]/med[base][1]:.3f}")
PY
