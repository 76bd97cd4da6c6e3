#!/usr/bin/env bash
# Runs Fidelis's benchmarks against the real binaries and prints every figure with the
# baseline it is compared to, measured in the same run. Used for docs/benchmarks.md.
#
#   tests/bench/run_benchmarks.sh [--quick] [--replay-only] [build-dir]
#
# --quick runs each benchmark for a moment on a small log (the test suite runs it as a smoke
# test, so the benchmarks keep working); without it the figures in docs/benchmarks.md are
# produced.
set -euo pipefail
quick=0 replay_only=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
if [ "${1:-}" = "--replay-only" ]; then replay_only=1; shift; fi
build=$(cd "${1:-build}" && pwd)
fidelisd=$build/server/fidelisd
seed=$build/server/fidelis-seed
bench=$build/clients/fidelis-bench
# Even a quick run spreads its commands over 1,000 accounts: 16 batches of 50 in flight on
# fewer conflict so often that some give up (ABORTED, "retry the command") on a busy machine.
if [ $quick = 1 ]; then
  seconds=1 accounts=1000 stream_events=300 calls=100 log_accounts=2000 log_events=100000
  small_events=20000 rounds=2
else
  seconds=10 accounts=1000 stream_events=100000 calls=2000 log_accounts=100000
  log_events=10000000 small_events=1000000 rounds=3
fi
work=$(mktemp -d /tmp/fidelis-bench-XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Starts fidelisd on a free port with data in $1; sets $pid and $addr; prints start-up time.
start_server() {
  local t0 t1
  t0=$(date +%s%N)
  coproc SERVER { exec "$fidelisd" --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --data_dir="$1" --log_level=error; }
  pid=$SERVER_PID
  read -r line <&"${SERVER[0]}"
  t1=$(date +%s%N)
  addr=${line#listening on }
  echo "fidelisd serving on $addr after $(( (t1 - t0) / 1000000 )) ms (head position $2)"
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
# Waits until every projection has caught up with the head of the log.
wait_caught_up() {
  while "$build/clients/fidelis" --server "$addr" projection list | awk 'NR>1 && $2 == "live" && $5 != 0 {x=1} END {exit !x}'; do
    sleep 1
  done
}
peak_rss_reset() { echo 5 > "/proc/$pid/clear_refs"; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status"; }

echo "== machine"
echo "nproc: $(nproc); memory: $(free -g | awk '/Mem:/ {print $2}') GiB; disk: $(df -h "$work" | awk 'NR==2 {print $1, $2}')"

if [ $replay_only = 0 ]; then
echo "== command path: ${seconds}s per measurement, 64 calls in flight (ExecuteCommands: 16 calls of 50 commands)"
start_server "$work/commands" 0
"$bench" --server "$addr" commands --accounts "$accounts" --seconds "$seconds" --concurrency 64 \
  --batch 50 --batch-concurrency 16
echo "== queries: GetAccountSummary, 64 calls in flight, against Ping"
"$bench" --server "$addr" queries --accounts "$accounts" --seconds "$seconds" --concurrency 64
echo "== stream length"
"$bench" --server "$addr" stream-length --events "$stream_events" --calls "$calls"
stop_server
fi

for events in $small_events $log_events; do
  echo "== replay: AccountSummary over $events events of $log_accounts accounts"
  "$seed" --data_dir="$work/log$events" --accounts="$log_accounts" --events="$events" --seed=1
  "$seed" --data_dir="$work/log$events" --scan
  start_server "$work/log$events" "$events"
  wait_caught_up
  peak_rss_reset
  "$bench" --server "$addr" rebuild --projection AccountSummary --batch-size 1000 --mode in-place
  echo "peak RSS during the rebuild: $(peak_rss_mib) MiB"
  stop_server
  echo "restart with $events events in the log:"
  start_server "$work/log$events" "$events"
  stop_server
  rm -rf "$work/log$events"
done

if [ $replay_only = 0 ]; then
  echo "== live traffic first: commands at a fixed offered rate, idle and during $rounds blue-green rebuilds of AccountSummary over $small_events events and more"
  "$seed" --data_dir="$work/load" --accounts="$log_accounts" --events="$small_events" --seed=2
  start_server "$work/load" "$small_events"
  wait_caught_up
  "$bench" --server "$addr" rebuild-under-load --projection AccountSummary \
    --accounts "$accounts" --seconds "$seconds" --concurrency 64 --rounds "$rounds"
  stop_server
  rm -rf "$work/load"
fi
