#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: addsvc as shipped, addsvc
# `-instrument false` and raw hyper and tonic (examples/raw_addsvc.rs), each serving the same
# `POST /sum` requests over HTTP/1.1 and over HTTP/2 (h2c), and gRPC `pb.Add/Sum` calls, all
# from h2load. Unlike compare.sh's timings, the counts repeat from run to run (within about 1%)
# whatever else the machine does, so a change of a few hundred instructions a request shows;
# they leave out the kernel's share (the socket calls, the same for all three). Given a
# function name, also prints the inclusive count per request of the functions whose names
# contain it.
#
# Usage: bash examples/addsvc/bench/instructions.sh [requests] [function]
set -euo pipefail
cd "$(dirname "$0")/../../.."
requests=${1:-10000}
function=${2:-}
if ! command -v valgrind >/dev/null; then
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends valgrind
fi
for tool in callgrind_control callgrind_annotate h2load curl; do
    command -v "$tool" >/dev/null \
        || { echo "$tool is missing (bash .ci/install installs h2load; curl: apt-get install curl)" >&2; exit 1; }
done
cargo build --release -q -p addsvc --bins --example raw_addsvc
out=target/addsvc-instructions
mkdir -p "$out"
printf '{"a":1,"b":2}' > "$out/sum.json"
# A gRPC frame: not compressed, 4 bytes, SumRequest { a: 1, b: 2 }.
printf '\x00\x00\x00\x00\x04\x08\x01\x10\x02' > "$out/sum.grpc"

load() { # proto http-port grpc-port requests
    local text
    case $1 in
        http) text=$(h2load --h1 -n "$4" -c 8 -d "$out/sum.json" \
            -H 'content-type: application/json' "http://127.0.0.1:$2/sum") ;;
        h2) text=$(h2load -n "$4" -c 8 -m 8 -d "$out/sum.json" \
            -H 'content-type: application/json' "http://127.0.0.1:$2/sum") ;;
        grpc) text=$(h2load -n "$4" -c 8 -m 8 -d "$out/sum.grpc" \
            -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$3/pb.Add/Sum") ;;
    esac
    grep -q " $4 succeeded" <<<"$text" || { echo "not all $4 $1 requests succeeded: $text" >&2; return 1; }
}

# The server under valgrind, killed however the script ends.
pid=
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true' EXIT

count() { # name http-port grpc-port command...
    local name=$1 http=$2 grpc=$3 file total
    shift 3
    rm -f "$out/$name".*
    valgrind --tool=callgrind --callgrind-out-file="$out/$name.%p" "$@" >/dev/null 2>"$out/$name.log" &
    pid=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null -d '{"a":1,"b":2}' "http://127.0.0.1:$http/sum" 2>/dev/null && break
        sleep 0.3
    done
    for proto in http h2 grpc; do
        # Warm-up (connections, buffers), then only the measured requests are counted.
        load "$proto" "$http" "$grpc" 200
        callgrind_control -z "$pid" >/dev/null 2>&1
        load "$proto" "$http" "$grpc" "$requests"
        callgrind_control -d "$pid" >/dev/null 2>&1
        file=$(ls -t "$out/$name".*[0-9].* | head -1)
        total=$(callgrind_annotate "$file" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
        echo "$proto $name $((total / requests))" | tee -a "$out/counts.txt"
        if [ -n "$function" ]; then
            callgrind_annotate --inclusive=yes --threshold=100 "$file" | grep -F "$function" \
                | sed -E 's/^ *([0-9,]+) \( *[0-9.]+%\) +(\?\?\?:)?/\1 /; s/ \[[^]]*\]$//' \
                | awk -v n="$requests" '{c = $1; gsub(",", "", c); $1 = ""; printf "  %8d%s\n", c / n, substr($0, 1, 160)}' \
                | head -20
        fi
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}

: > "$out/counts.txt"
count kit 18581 18582 target/release/addsvc -debug.addr 127.0.0.1:18580 \
    -http-addr 127.0.0.1:18581 -grpc-addr 127.0.0.1:18582 -jsonrpc-addr 127.0.0.1:18584
count bare 18681 18682 target/release/addsvc -instrument false -debug.addr 127.0.0.1:18680 \
    -http-addr 127.0.0.1:18681 -grpc-addr 127.0.0.1:18682 -jsonrpc-addr 127.0.0.1:18684
count raw 18591 18592 target/release/examples/raw_addsvc 127.0.0.1:18591 127.0.0.1:18592
awk '{n[$1 " " $2] = $3} END {
    split("http h2 grpc", protos, " ")
    for (p = 1; p <= 3; p++) {
        proto = protos[p]
        k = n[proto " kit"]; b = n[proto " bare"]; r = n[proto " raw"]
        printf "%s instructions per request: addsvc %d, -instrument false %d, raw %d: ratios %.3f, %.3f\n",
            proto, k, b, r, k / r, b / r
    }
}' "$out/counts.txt"
