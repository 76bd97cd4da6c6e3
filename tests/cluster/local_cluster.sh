#!/usr/bin/env bash
# Brings up a Fidelis cluster on loopback and keeps it up until Ctrl-C (or SIGTERM):
#   3 NATS servers with JetStream, clustered (clients on 4222-4224, routes on 6222-6224),
#   2 fidelisd nodes on one stream with 3 replicas (gRPC on 50051 and 50052),
# each with its own data directory under the work directory (default: a new one in /tmp).
#
#   tests/cluster/local_cluster.sh [build-dir] [work-dir]
#
# NATS_PORT (4222), ROUTE_PORT (6222) and NODE_PORT (50051) move the three ranges.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
work=${2:-$(mktemp -d /tmp/fidelis-cluster-XXXXXX)}
mkdir -p "$work"
nats_port=${NATS_PORT:-4222} route_port=${ROUTE_PORT:-6222} node_port=${NODE_PORT:-50051}
nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)

pids=()
stop() {
  echo "stopping the cluster"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

routes="nats://127.0.0.1:$route_port,nats://127.0.0.1:$((route_port + 1)),nats://127.0.0.1:$((route_port + 2))"
urls="nats://127.0.0.1:$nats_port,nats://127.0.0.1:$((nats_port + 1)),nats://127.0.0.1:$((nats_port + 2))"
for i in 0 1 2; do
  "$nats_server" -a 127.0.0.1 -p $((nats_port + i)) -js -sd "$work/nats$i" -n "nats$i" \
    --cluster_name fidelis --cluster "nats://127.0.0.1:$((route_port + i))" --routes "$routes" \
    -l "$work/nats$i.log" &
  pids+=($!)
done
echo "NATS: $urls (logs in $work/nats*.log)"

for i in 1 2; do
  "$build/server/fidelisd" --listen="127.0.0.1:$((node_port + i - 1))" --data_dir="$work/node$i" \
    --http_listen="127.0.0.1:$((8080 + i))" \
    --event_store=nats --nats_url="$urls" --nats_replicas=3 >"$work/node$i.out" 2>"$work/node$i.log" &
  pids+=($!)
done
for i in 1 2; do
  for _ in $(seq 100); do
    grep -q "listening on" "$work/node$i.out" 2>/dev/null && break
    sleep 0.1
  done
  echo "node$i: $(grep "listening on" "$work/node$i.out"), $(grep "http on" "$work/node$i.out") (data in $work/node$i, log in $work/node$i.log)"
done
echo "Ctrl-C stops the cluster; its data stays in $work."
wait
