#!/usr/bin/env bash
# gRPC load benchmark: kit-transport-grpc beside a raw tonic server doing the same work
# (examples/load_server.rs), driven by h2load (Debian nghttp2-client) sending one raw unary
# frame, 32 connections with 8 streams each. Runs alternate (raw, kit, raw, ...) so drift hits
# both; prints each run and the medians.
# Usage: bash crates/kit-transport-grpc/benches/load.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds=${1:-3}
seconds=${2:-10}
command -v h2load >/dev/null || { echo "h2load is missing (Debian package nghttp2-client)" >&2; exit 1; }
cargo build --release -q -p kit-transport-grpc --example load_server
bin=target/release/examples/load_server
frame=$(mktemp)
# SayRequest { text: "hello", times: 2 }, behind gRPC's 5-byte prefix (uncompressed, 9 bytes).
printf '\x00\x00\x00\x00\x09\x0a\x05hello\x10\x02' > "$frame"
"$bin" raw 127.0.0.1:18191 & raw_pid=$!
"$bin" kit 127.0.0.1:18192 & kit_pid=$!
trap 'kill $raw_pid $kit_pid 2>/dev/null; rm -f "$frame"' EXIT
sleep 1
for port in 18191 18192; do
    "$bin" check "127.0.0.1:$port" || { echo "server on $port does not answer right" >&2; exit 1; }
done
results=$(mktemp)
for round in $(seq "$rounds"); do
    for which in raw kit; do
        case $which in raw) port=18191 ;; kit) port=18192 ;; esac
        out=$(h2load -c32 -m8 -t1 -D"$seconds" -d "$frame" \
            -H 'content-type: application/grpc' -H 'te: trailers' \
            "http://127.0.0.1:$port/kittest.Echo/Say")
        rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
        failed=$(sed -n 's/^requests: .* \([0-9]*\) failed.*/\1/p' <<<"$out")
        twoxx=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
        echo "round $round $which: $rps req/s, $twoxx 2xx, $failed failed"
        echo "$which $rps" >> "$results"
    done
done
python3 - "$results" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
med = {w: statistics.median(float(r[1]) for r in rows if r[0] == w) for w in ("raw", "kit")}
for w, v in med.items():
    print(f"median {w}: {v:.0f} req/s")
print(f"kit/raw: throughput {med['kit']/med['raw']:.3f}")
PY
