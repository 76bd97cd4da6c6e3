// fidelis-bench's benchmarks across several servers: one load on several deployments side by
// side (a node on the embedded log, one on a JetStream stream with one replica, one with
// three), and two cluster nodes writing to the same accounts against one node alone.
#pragma once

#include <string>
#include <vector>

namespace fidelis::clients {

// A server to measure, and how the tables name it.
struct Target {
  std::string label;
  std::string address;
};

// Parses "label=host:port".
bool ParseTarget(const std::string& text, Target* target);

// Unary commands (`concurrency` in flight) and ExecuteCommands calls of `batch` commands
// (`batch_concurrency` in flight) against each target in turn, `rounds` times, each run for
// `seconds`; prints each target's pooled throughput, p50 and p99, and each as a ratio to the
// first target's. Returns non-zero when a call failed.
int RunCompare(const std::vector<Target>& targets, int accounts, double seconds, int concurrency,
               int batch, int batch_concurrency, int rounds, bool json);

// Unary commands on `accounts` accounts opened through `a`, with `concurrency` calls in flight:
// all sent to `a` alone, then half to `a` and half to `b` at once (two nodes of one cluster),
// `rounds` times alternately; prints both and their ratio. Returns non-zero when a call failed.
int RunContention(const std::string& a, const std::string& b, int accounts, double seconds,
                  int concurrency, int rounds, bool json);

// Appends about `events` events to the log through `server`, in ExecuteCommands calls of
// `batch` commands on `accounts` accounts, 16 calls in flight; prints the rate.
int RunFill(const std::string& server, int accounts, uint64_t events, int batch, bool json);

}  // namespace fidelis::clients
