#!/usr/bin/env bash
# The gateway's added latency: POST /addsvc/sum through apigateway (three addsvc behind it,
# p2c, retries, breakers, logging and metrics on) beside the same call made to one addsvc
# directly, alternating, in one run. wrk at a fixed, moderate load (-c8) so that latency, not
# saturation, is measured; logs go to /dev/null in both setups.
# Usage: bash examples/apigateway/bench.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
seconds=${2:-10}
command -v wrk >/dev/null || { echo "wrk is missing (Debian package wrk)" >&2; exit 1; }
cargo build --release -q -p addsvc -p apigateway
lua=$(mktemp --suffix .lua)
cat > "$lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"a":1,"b":2}'
wrk.headers["Content-Type"] = "application/json"
LUA
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -f "$lua"' EXIT
for i in 1 2 3; do
    target/release/addsvc -debug.addr "127.0.0.1:1${i}180" -http-addr "127.0.0.1:1${i}181" \
        -grpc-addr "127.0.0.1:1${i}182" -jsonrpc-addr "127.0.0.1:1${i}184" 2>/dev/null &
    pids+=($!)
done
target/release/apigateway -http-addr 127.0.0.1:18000 -debug.addr 127.0.0.1:18099 \
    -addsvc 127.0.0.1:11181,127.0.0.1:12181,127.0.0.1:13181 2>/dev/null &
pids+=($!)
sleep 1
for url in http://127.0.0.1:11181/sum http://127.0.0.1:18000/addsvc/sum; do
    curl -fsS -X POST -d '{"a":1,"b":2}' "$url" | grep -q '"v":3' || { echo "$url does not answer" >&2; exit 1; }
done
results=$(mktemp)
for round in $(seq "$rounds"); do
    for which in direct gateway; do
        case $which in
            direct) url=http://127.0.0.1:11181/sum ;;
            gateway) url=http://127.0.0.1:18000/addsvc/sum ;;
        esac
        out=$(wrk -t1 -c8 -d"${seconds}s" --latency -s "$lua" "$url")
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        errors=$(grep -c "Non-2xx\|Socket errors" <<<"$out" || true)
        echo "round $round $which: $rps req/s, p50 $p50, p99 $p99, error lines $errors"
        echo "$which $rps $p50 $p99" >> "$results"
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
med = {w: [statistics.median((float(r[1]) if i == 0 else ms(r[i + 1])) for r in rows if r[0] == w) for i in range(3)]
       for w in ("direct", "gateway")}
for w, (rps, p50, p99) in med.items():
    print(f"median {w}: {rps:.0f} req/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms")
d, g = med["direct"], med["gateway"]
print(f"gateway added: p50 +{g[1]-d[1]:.3f} ms ({g[1]/d[1]:.2f}x), p99 +{g[2]-d[2]:.3f} ms ({g[2]/d[2]:.2f}x)")
PY
