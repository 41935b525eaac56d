#!/usr/bin/env bash
# addsvc as shipped (a log line and metrics for every call, logs to /dev/null) and with
# `-instrument false`, beside raw hyper and raw tonic doing the same work
# (examples/raw_addsvc.rs): HTTP/1.1 POST /sum under wrk, the same over HTTP/2 (h2c) and gRPC
# pb.Add/Sum under h2load, the servers alternating over rounds so that drift hits all. Reports
# the medians of requests/s, latency (wrk's p50 and p99; h2load's mean), server CPU per request
# (from /proc), resident memory at 256 connections and the peak, with the ratios addsvc/raw,
# both of the medians and the median of each round's ratio (steadier on a drifting machine);
# then HTTP/1.1 requests/s and p99 by connections (1, 8, 32, 128, 512), plotted to
# docs/addsvc-scaling.png (matplotlib, installed into target/benchvenv by this script); and
# the log records a fresh addsvc drops in ten bursts after quiet spells.
# go-kit's addsvc with its example's logging and instrumenting middleware (the interop tests'
# go-kit peer, tests/gokit/peer.go with peer_bench.go, built from Debian's Go packages) runs
# in the same rounds, for the ratios against go-kit. The load generator's CPU is measured too:
# a saturated one (a core's worth) sets the pace, and the script says so.
#
# With BEFORE set to another addsvc binary (a build of an earlier commit, kept aside), that
# build runs as shipped in every round too, and the summary gives this build's figures over
# its, per round: a change's before and after, measured side by side as the others are.
#
# With two cores or more, every server runs on core 1 and every load generator on core 0
# (taskset): the server under load then has a core to itself and uses all of it, so requests/s
# compare what each server costs. Unpinned (PIN=0), server and load generator share both cores,
# neither saturates and the round trips set the pace (docs/PERFORMANCE.md).
#
# Usage: [PIN=0] [BEFORE=path/to/addsvc] bash examples/addsvc/bench/compare.sh [rounds] [seconds]
set -euo pipefail
# Read where the caller is, before the script moves to the workspace's root.
before_bin=${BEFORE:+$(realpath -e "$BEFORE")}
cd "$(dirname "$0")/../../.."
rounds=${1:-5}
seconds=${2:-5}
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    server=(taskset -c 1)
    loader=(taskset -c 0)
else
    server=()
    loader=()
fi
for tool in wrk h2load go protoc protoc-gen-go; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (bash .ci/install installs it)" >&2; exit 1; }
done
# go-kit's peer with the example's metrics needs the Prometheus Go client (not a test need).
if [ ! -d /usr/share/gocode/src/github.com/prometheus/client_golang ]; then
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
        golang-github-prometheus-client-golang-dev
fi
if ! target/benchvenv/bin/python -c "import matplotlib" 2>/dev/null; then
    python3 -m venv target/benchvenv
    target/benchvenv/bin/pip install --quiet matplotlib
fi
cargo build --release -q -p addsvc --bins --example raw_addsvc
[ -z "$before_bin" ] || [ -x "$before_bin" ] || { echo "BEFORE=$BEFORE is not an executable" >&2; exit 1; }
out=target/addsvc-bench
mkdir -p "$out"
: > "$out/runs.txt"

# go-kit's peer with the benchmark's middleware: GOPATH mode, offline, Debian's tree second.
gopath="$PWD/$out/gopath"
peer="$PWD/$out/gokit-peer"
rm -rf "$gopath" && mkdir -p "$gopath/src/peer/pb"
cp examples/addsvc/tests/gokit/peer.go examples/addsvc/tests/gokit/peer_bench.go "$gopath/src/peer/"
protoc -Iexamples/addsvc/proto --go_out=plugins=grpc:"$gopath/src/peer/pb" addsvc.proto
(cd "$gopath/src/peer" && GO111MODULE=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode" \
    GOCACHE="$gopath/cache" go build -tags bench -o "$peer" .)

cat > "$out/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"a":1,"b":2}'
wrk.headers["Content-Type"] = "application/json"
LUA
# A gRPC frame: not compressed, 4 bytes, SumRequest { a: 1, b: 2 }.
printf '\x00\x00\x00\x00\x04\x08\x01\x10\x02' > "$out/sum.grpc"
printf '{"a":1,"b":2}' > "$out/sum.json"

"${server[@]}" target/release/addsvc -debug.addr 127.0.0.1:18180 -http-addr 127.0.0.1:18181 \
    -grpc-addr 127.0.0.1:18182 -jsonrpc-addr 127.0.0.1:18184 2>/dev/null &
kit_pid=$!
"${server[@]}" target/release/addsvc -instrument false -debug.addr 127.0.0.1:18280 -http-addr 127.0.0.1:18281 \
    -grpc-addr 127.0.0.1:18282 -jsonrpc-addr 127.0.0.1:18284 2>/dev/null &
bare_pid=$!
"${server[@]}" target/release/examples/raw_addsvc 127.0.0.1:18191 127.0.0.1:18192 &
raw_pid=$!
"${server[@]}" "$out/gokit-peer" serve -instrument -http-addr 127.0.0.1:18391 -grpc-addr 127.0.0.1:18392 \
    -jsonrpc-addr 127.0.0.1:18394 2>/dev/null &
gokit_pid=$!
servers=(kit bare raw gokit)
before_pid=
if [ -n "$before_bin" ]; then
    "${server[@]}" "$before_bin" -debug.addr 127.0.0.1:18780 -http-addr 127.0.0.1:18781 \
        -grpc-addr 127.0.0.1:18782 -jsonrpc-addr 127.0.0.1:18784 2>/dev/null &
    before_pid=$!
    servers+=(before)
fi
trap 'kill $kit_pid $bare_pid $raw_pid $gokit_pid $before_pid 2>/dev/null' EXIT
sleep 1
for port in 18181 18281 18191 18391 ${before_bin:+18781}; do
    curl -fsS -d '{"a":1,"b":2}' "http://127.0.0.1:$port/sum" | grep -q '"v":3' \
        || { echo "the server on $port does not answer {\"v\":3}" >&2; exit 1; }
done

# CPU time of a process so far, in ticks of 10 ms.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Runs a load generator (one thread); its user + system CPU seconds go to $out/loader.
loaded() { local TIMEFORMAT='%U %S'; { time "$@"; } 2> "$out/loader"; }
# The load generator's share of a core over a run of $1 seconds: near 1, it set the pace.
loader_share() { awk -v s="$1" 'END {printf "%.2f", ($1 + $2) / s}' "$out/loader"; }

http_run() { # server pid port connections seconds
    local before after text
    before=$(ticks "$2")
    text=$(loaded "${loader[@]}" wrk -t1 -c"$4" -d"$5s" --latency -s "$out/post.lua" "http://127.0.0.1:$3/sum")
    after=$(ticks "$2")
    if grep -q "Non-2xx\|Socket errors" <<<"$text"; then echo "errors: $text" >&2; exit 1; fi
    awk -v who="$1" -v c="$4" -v cpu=$((after - before)) -v loader="$(loader_share "$5")" '
        /^Requests\/sec:/ {rps = $2} /requests in/ {n = $1}
        $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
        END {print "http", who, c, rps, n, p50, p99, cpu, loader}' <<<"$text"
}

grpc_run() { # server pid port seconds
    local before after text
    before=$(ticks "$2")
    text=$(loaded "${loader[@]}" h2load -c32 -m8 -t1 -D"$4" -d "$out/sum.grpc" -H 'content-type: application/grpc' \
        -H 'te: trailers' "http://127.0.0.1:$3/pb.Add/Sum")
    after=$(ticks "$2")
    awk -v who="$1" -v cpu=$((after - before)) -v loader="$(loader_share "$4")" '
        /^finished in/ {rps = $4} /^requests:/ {n = $8; failed = $10 + $12}
        /^time for request:/ {mean = $6}
        END {if (failed > 0) exit 1; print "grpc", who, 256, rps, n, mean, mean, cpu, loader}' <<<"$text"
}

h2_run() { # server pid port seconds: POST /sum over h2c (HTTP/2 without TLS), as gRPC is loaded
    local before after text
    before=$(ticks "$2")
    text=$(loaded "${loader[@]}" h2load -c32 -m8 -t1 -D"$4" -d "$out/sum.json" \
        -H 'content-type: application/json' "http://127.0.0.1:$3/sum")
    after=$(ticks "$2")
    awk -v who="$1" -v cpu=$((after - before)) -v loader="$(loader_share "$4")" '
        /^finished in/ {rps = $4} /^requests:/ {n = $8; failed = $10 + $12}
        /^status codes:/ {not2xx = $5 + $7 + $9}
        /^time for request:/ {mean = $6}
        END {if (failed > 0 || not2xx > 0) exit 1; print "h2", who, 256, rps, n, mean, mean, cpu, loader}' <<<"$text"
}

# Where each server is: pid, HTTP port, gRPC port.
where_is() {
    case $1 in
        kit) echo "$kit_pid 18181 18182" ;;
        bare) echo "$bare_pid 18281 18282" ;;
        raw) echo "$raw_pid 18191 18192" ;;
        gokit) echo "$gokit_pid 18391 18392" ;;
        before) echo "$before_pid 18781 18782" ;;
    esac
}
# Warm-up, then the rounds.
for who in "${servers[@]}"; do
    read -r pid http grpc <<<"$(where_is $who)"
    http_run "$who" "$pid" "$http" 32 2 >/dev/null
done
# Each protocol's runs of the servers follow one another, in an order that turns every round:
# the runs compared lie seconds apart, not a minute, and no server always goes first.
for round in $(seq "$rounds"); do
    for proto in http h2 grpc; do
        for i in "${!servers[@]}"; do
            who=${servers[$(((i + round) % ${#servers[@]}))]}
            read -r pid http grpc <<<"$(where_is $who)"
            case $proto in
                http) http_run "$who" "$pid" "$http" 32 "$seconds" ;;
                # go-kit's HTTP server (net/http) does not speak h2c.
                h2) [ "$who" = gokit ] || h2_run "$who" "$pid" "$http" "$seconds" ;;
                grpc) grpc_run "$who" "$pid" "$grpc" "$seconds" ;;
            esac | sed "s/\$/ $round/" | tee -a "$out/runs.txt"
        done
    done
done
# Resident memory as issue 19 measures it: with 256 connections open for 60 s (the four
# servers loaded at once: memory, not speed), sampled just before the load ends. RssAnon is
# the part that grows with connections; the rest is mostly the binary's code.
loads=()
for who in "${servers[@]}"; do
    read -r pid http grpc <<<"$(where_is $who)"
    "${loader[@]}" wrk -t1 -c256 -d60s -s "$out/post.lua" "http://127.0.0.1:$http/sum" >/dev/null &
    loads+=($!)
done
sleep 57
for who in "${servers[@]}"; do
    read -r pid http grpc <<<"$(where_is $who)"
    echo "memory $who $(awk '/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} END {print r, a}' "/proc/$pid/status")"
done | tee "$out/memory.txt"
wait "${loads[@]}"
# Requests/s and p99 by connections.
for c in 1 8 32 128 512; do
    for who in kit bare raw; do
        read -r pid http grpc <<<"$(where_is $who)"
        http_run "$who" "$pid" "$http" "$c" 3 | sed 's/^http/scale/' | tee -a "$out/runs.txt"
    done
done
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
echo "peak resident: addsvc $(hwm $kit_pid) KiB, addsvc -instrument false $(hwm $bare_pid) KiB, raw $(hwm $raw_pid) KiB, go-kit $(hwm $gokit_pid) KiB" | tee "$out/rss.txt"

# Log records dropped by bursts after quiet spells (kit-log's non-blocking writer polls only
# every 50 ms once the service is quiet): a fresh addsvc as shipped, logging to a file, idle for
# a second and then under 1,024 streams for a second, ten times.
"${server[@]}" target/release/addsvc -debug.addr 127.0.0.1:18480 -http-addr 127.0.0.1:18481 \
    -grpc-addr 127.0.0.1:18482 -jsonrpc-addr 127.0.0.1:18484 2>"$out/bursts.log" &
burst_pid=$!
trap 'kill $kit_pid $bare_pid $raw_pid $gokit_pid $before_pid $burst_pid 2>/dev/null' EXIT
sleep 1
served=0
for _ in $(seq 10); do
    sleep 1
    n=$("${loader[@]}" h2load -c64 -m16 -t1 -D1 -d "$out/sum.json" -H 'content-type: application/json' \
        http://127.0.0.1:18481/sum | awk '/^requests:/ {print $8}')
    served=$((served + n))
done
kill "$burst_pid" && wait "$burst_pid" || true
echo "bursts: $served requests, $(grep -c 'method=sum' "$out/bursts.log") logged," \
    "records dropped: $(awk -F'dropped=' '/log records dropped/ {d += $2; n++} END {print d + 0, "in", n + 0, "reports"}' "$out/bursts.log")" \
    | tee "$out/bursts.txt"

target/benchvenv/bin/python - "$out" <<'PY'
import statistics, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out = sys.argv[1]
def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit) and not (unit == "s" and v.endswith(("us", "ms"))):
            return float(v[: -len(unit)]) * f
    return float(v)
rows = [l.split() for l in open(f"{out}/runs.txt")]
def value(r, key):
    return {"rps": float(r[3]), "p50": ms(r[5]), "p99": ms(r[6]), "cpu": int(r[7]) * 10_000 / int(r[4])}[key]
def by_round(proto):
    """Each round's runs of `proto`, by server."""
    rounds = {}
    for r in rows:
        if r[0] == proto and len(r) > 9:
            rounds.setdefault(r[9], {})[r[1]] = r
    return rounds.values()
def paired(proto, key, whos=("kit", "bare"), over="raw"):
    """For each of `whos`, the median over rounds of its figure over `over`'s in the same round:
    the servers' runs in a round lie seconds apart, so the machine's drift over the run (its
    load, its clock speed) divides out, which a ratio of medians leaves in."""
    both = [v for v in by_round(proto) if {*whos, over} <= v.keys()]
    return tuple(statistics.median(value(v[who], key) / value(v[over], key) for v in both) for who in whos)
def ahead_of_before(proto):
    """In how many rounds this build served more requests/s than BEFORE's."""
    both = [v for v in by_round(proto) if {"kit", "before"} <= v.keys()]
    return f"{sum(value(v['kit'], 'rps') > value(v['before'], 'rps') for v in both)} of {len(both)} rounds"
print()
for proto in ("http", "h2", "grpc"):
    med = {}
    for who in ("kit", "bare", "raw", "gokit", "before"):
        runs = [r for r in rows if r[0] == proto and r[1] == who]
        if not runs:
            continue
        med[who] = {key: statistics.median(value(r, key) for r in runs) for key in ("rps", "p50", "p99", "cpu")}
        med[who]["loader"] = statistics.median(float(r[8]) for r in runs)
    k, b, r = med["kit"], med["bare"], med["raw"]
    lat = "p50 / p99" if proto == "http" else "mean"
    each = {key: "per round %.3f, %.3f" % paired(proto, key) for key in ("rps", "p99", "cpu")}
    print(f"{proto}: req/s addsvc {k['rps']:.0f}, -instrument false {b['rps']:.0f}, raw {r['rps']:.0f}: ratios {k['rps']/r['rps']:.3f}, {b['rps']/r['rps']:.3f} ({each['rps']})")
    print(f"  latency {lat} (ms): addsvc {k['p50']:.3f} / {k['p99']:.3f}, -instrument false {b['p50']:.3f} / {b['p99']:.3f}, raw {r['p50']:.3f} / {r['p99']:.3f}: p99 ratios {k['p99']/r['p99']:.3f}, {b['p99']/r['p99']:.3f} ({each['p99']})")
    print(f"  server CPU per request (us): addsvc {k['cpu']:.1f}, -instrument false {b['cpu']:.1f}, raw {r['cpu']:.1f}: ratios {k['cpu']/r['cpu']:.3f}, {b['cpu']/r['cpu']:.3f} ({each['cpu']})")
    busy = [who for who in ("kit", "bare", "raw") if med[who]["loader"] >= 0.9]
    print(f"  load generator's share of a core: addsvc {k['loader']:.2f}, -instrument false {b['loader']:.2f}, raw {r['loader']:.2f}")
    if busy:
        print(f"  WARNING: the load generator was saturated against {', '.join(busy)}: those requests/s are its ceiling, not the server's; compare instructions.sh's counts")
    if "before" in med:
        ahead = ahead_of_before(proto)
        print(f"  this build over BEFORE, per round: req/s %.3f (ahead in {ahead}), {'p99' if proto == 'http' else 'mean latency'} %.3f, CPU per request %.3f"
              % tuple(paired(proto, key, ("kit",), "before")[0] for key in ("rps", "p99", "cpu")))
    if "gokit" not in med:
        continue
    g = med["gokit"]
    print(f"  go-kit addsvc with its example's middleware: req/s {g['rps']:.0f}, latency {g['p50']:.3f} / {g['p99']:.3f} ms, CPU per request {g['cpu']:.1f} us: addsvc as shipped does {k['rps']/g['rps']:.2f}x its requests/s (per round %.2fx)" % paired(proto, "rps", ("kit",), "gokit"))
print(open(f"{out}/rss.txt").read().strip())
print(open(f"{out}/bursts.txt").read().strip())
mem = {l.split()[1]: (int(l.split()[2]), int(l.split()[3])) for l in open(f"{out}/memory.txt")}
k, b, r, g = (mem[w] for w in ("kit", "bare", "raw", "gokit"))
print(f"resident at 256 connections after 57 s (KiB, of which anonymous): addsvc {k[0]} ({k[1]}), -instrument false {b[0]} ({b[1]}), raw {r[0]} ({r[1]}), go-kit {g[0]} ({g[1]}): ratios {k[0]/r[0]:.3f}, {b[0]/r[0]:.3f}")
if "before" in mem:
    print(f"  BEFORE {mem['before'][0]} ({mem['before'][1]}): this build over BEFORE {k[0]/mem['before'][0]:.3f}")

scale = [r for r in rows if r[0] == "scale"]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
for who, label in (
    ("kit", "addsvc as shipped (logs, metrics)"),
    ("bare", "addsvc -instrument false"),
    ("raw", "raw hyper, same work"),
):
    pts = sorted((int(r[2]), float(r[3]), ms(r[6])) for r in scale if r[1] == who)
    a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    b.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=label)
for ax, title in ((a, "requests/s"), (b, "p99 latency (ms)")):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("connections (wrk, 1 thread, HTTP/1.1 POST /sum)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
# p99 spans 0.05 ms (one connection) to tens of ms (512): a log scale shows every step.
b.set_yscale("log")
fig.tight_layout()
fig.savefig("docs/addsvc-scaling.png", dpi=100)
print("plot: docs/addsvc-scaling.png")
PY
