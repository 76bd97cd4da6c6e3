#!/usr/bin/env bash
# Runs Fidelis's cluster benchmarks against the real binaries and real nats-server processes on
# loopback, and prints every figure with the baseline it is compared to, measured in the same
# run. Used for docs/benchmarks.md.
#
#   tests/bench/run_cluster_benchmarks.sh [--quick] [build-dir]
#
# It starts one nats-server (for a stream with one replica, R1) and a cluster of three (R3),
# then fidelisd nodes: one on the embedded log, one on the R1 stream, one on the R3 stream.
#   1. commands: unary and ExecuteCommands on the embedded node, the R1 node and the R3 node,
#      round-robin; ratios to the embedded node. Each mode has one node, as the embedded one.
#   1b. a second node joins the R3 stream; unary commands on the first again, while the second
#      follows the stream on the same cores (on a real cluster it has a machine of its own).
#   2. contention: both R3 nodes writing to the same accounts, against one node alone.
#   3. queries: GetAccountSummary against Ping on an R3 node.
#   4. a fresh node: the R3 stream filled to about 1,000,000 events, a third node with an
#      empty disk builds its replica; its rate against a raw scan of the same log from disk.
# --quick runs each for a moment on a small log (the test suite runs it as a smoke test).
set -euo pipefail
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
build=$(cd "${1:-build}" && pwd)
fidelisd=$build/server/fidelisd
seed=$build/server/fidelis-seed
bench=$build/clients/fidelis-bench
nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
# Even a quick run spreads its commands over 1,000 accounts: 16 batches of 50 in flight on
# fewer conflict so often that some give up (ABORTED, "retry the command") on a busy machine.
if [ $quick = 1 ]; then
  seconds=1 rounds=1 accounts=1000 fill_events=5000
else
  seconds=10 rounds=2 accounts=1000 fill_events=1000000
fi
work=$(mktemp -d /tmp/fidelis-cluster-bench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A port nothing listens on now (the servers bind it a moment later).
free_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

# nats NAME PORT [ROUTE_PORT ROUTES]: starts a nats-server with JetStream.
nats() {
  local args=(-a 127.0.0.1 -p "$2" -js -sd "$work/$1" -n "$1" -l "$work/$1.log")
  if [ $# -gt 2 ]; then args+=(--cluster_name bench --cluster "nats://127.0.0.1:$3" --routes "$4"); fi
  "$nats_server" "${args[@]}" &
  pids+=($!)
}

# node NAME [FLAGS...]: starts fidelisd with data in $work/NAME; sets $addr once it listens.
node() {
  local name=$1
  shift
  "$fidelisd" --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --data_dir="$work/$name" --log_level=warn "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 600); do
    if grep -q "listening on" "$work/$name.out" 2>/dev/null; then
      addr=$(sed -n 's/^listening on //p' "$work/$name.out")
      return
    fi
    sleep 0.1
  done
  echo "$name did not start:" >&2
  cat "$work/$name.err" >&2
  exit 1
}

echo "== machine"
echo "nproc: $(nproc); memory: $(free -g | awk '/Mem:/ {print $2}') GiB; $("$nats_server" --version)"

r1_port=$(free_port)
nats r1 "$r1_port"
r3_ports=() route_ports=()
for i in 0 1 2; do r3_ports+=("$(free_port)"); route_ports+=("$(free_port)"); done
routes="nats://127.0.0.1:${route_ports[0]},nats://127.0.0.1:${route_ports[1]},nats://127.0.0.1:${route_ports[2]}"
r3_urls="nats://127.0.0.1:${r3_ports[0]},nats://127.0.0.1:${r3_ports[1]},nats://127.0.0.1:${r3_ports[2]}"
for i in 0 1 2; do nats "r3n$i" "${r3_ports[$i]}" "${route_ports[$i]}" "$routes"; done

node embedded
embedded=$addr
node r1 --event_store=nats --nats_url="nats://127.0.0.1:$r1_port" --nats_replicas=1
r1=$addr
node a --event_store=nats --nats_url="$r3_urls" --nats_replicas=3
a=$addr
echo "embedded $embedded; R1 node $r1; R3 node $a"

echo "== commands: embedded vs JetStream R1 vs R3, one node each, 64 unary calls in flight, ExecuteCommands of 50 with 16 in flight, ${seconds}s each, $rounds rounds"
"$bench" compare --target "embedded=$embedded" --target "r1=$r1" --target "r3=$a" \
  --accounts "$accounts" --seconds "$seconds" --concurrency 64 --batch 50 \
  --batch-concurrency 16 --rounds "$rounds"

node b --event_store=nats --nats_url="$r3_urls" --nats_replicas=3
b=$addr
echo "== commands with a second R3 node ($b) following the stream on the same cores: embedded vs R3, 64 unary calls in flight"
"$bench" compare --target "embedded=$embedded" --target "r3+follower=$a" \
  --accounts "$accounts" --seconds "$seconds" --concurrency 64 --batch 0 --rounds "$rounds"

echo "== contention: two R3 nodes writing to the same $accounts accounts vs one node alone, 64 calls in flight in all"
"$bench" --server "$a" contention --other "$b" --accounts "$accounts" --seconds "$seconds" \
  --concurrency 64 --rounds "$rounds"

echo "== queries on an R3 node: GetAccountSummary against Ping, 64 in flight"
"$bench" --server "$a" queries --accounts "$accounts" --seconds "$seconds" --concurrency 64 \
  --rounds $((rounds + 1))

echo "== a fresh node building its replica"
"$bench" --server "$a" fill --accounts "$accounts" --events "$fill_events" --batch 100
node fresh --event_store=nats --nats_url="$r3_urls" --nats_replicas=3
for _ in $(seq 6000); do
  grep -q "caught up with the stream" "$work/fresh.err" && break
  sleep 0.1
done
caught_up=$(grep "caught up with the stream" "$work/fresh.err")
echo "$caught_up"
kill "$a_pid"
wait "$a_pid" 2>/dev/null || true
scan=$("$seed" --data_dir="$work/a" --scan)
echo "$scan (node a's replica of the same log, from disk)"
replica_rate=$(echo "$caught_up" | sed -n 's/.*(\([0-9]*\) events\/s).*/\1/p')
scan_rate=$(echo "$scan" | sed -n 's/.* = \([0-9]*\) events\/s.*/\1/p')
awk -v r="$replica_rate" -v s="$scan_rate" \
  'BEGIN {printf "fresh node replica build / raw scan: %.3f\n", (s > 0 ? r / s : 0)}'
