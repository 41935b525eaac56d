#!/usr/bin/env bash
# A small kit-rs cluster on this machine: etcd, three addsvc that register in it, and the
# apigateway that discovers them. Ctrl-C stops them all (the services drain and deregister).
#
#   bash examples/cluster.sh
#   curl -d '{"a":1,"b":2}' localhost:8000/addsvc/sum        # from another terminal
#
# Needs etcd (Debian: apt-get install etcd-server).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v etcd >/dev/null || { echo "etcd is not installed (Debian: apt-get install etcd-server)" >&2; exit 1; }
cargo build -q -p addsvc -p apigateway

dir=$(mktemp -d)
pids=()
etcd_pid=
stop() {
    trap - INT TERM EXIT
    echo "stopping"
    # The services first, so that they deregister while etcd is still there.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -z "$etcd_pid" ] || { kill -TERM "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; }
    rm -rf "$dir"
}
trap stop INT TERM EXIT

etcd --name cluster --data-dir "$dir/etcd" \
    --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster cluster=http://127.0.0.1:23800 --log-level error --logger zap \
    --log-outputs "$dir/etcd.log" &
etcd_pid=$!
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/23790) 2>/dev/null && break
    sleep 0.1
done

for i in 1 2 3; do
    target/debug/addsvc -etcd-addr 127.0.0.1:23790 \
        -debug.addr "127.0.0.1:${i}8080" -http-addr "127.0.0.1:${i}8081" \
        -grpc-addr "127.0.0.1:${i}8082" -jsonrpc-addr "127.0.0.1:${i}8084" 2>"$dir/addsvc-$i.log" &
    pids+=($!)
done
sleep 1
target/debug/apigateway -etcd-addr 127.0.0.1:23790 -http-addr 127.0.0.1:8000 \
    -debug.addr 127.0.0.1:8090 &
pids+=($!)

echo "cluster up: gateway on :8000 (debug :8090), addsvc on :18081 :28081 :38081, etcd on :23790"
echo "try: curl -d '{\"a\":1,\"b\":2}' localhost:8000/addsvc/sum"
wait
