// The machinery of fidelis-bench: driving calls at a concurrency or an offered rate and
// measuring their latencies, issuing the calls each benchmark makes, and timing rebuilds.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "fidelis/v1/accounts.grpc.pb.h"
#include "fidelis/v1/admin.grpc.pb.h"

namespace fidelis::clients {

using Clock = std::chrono::steady_clock;

// The --trace file, or null; set once before the first measurement.
extern FILE* trace_file;

struct Measurement {
  std::string name;
  double seconds = 0;
  uint64_t ok = 0;
  uint64_t failed = 0;
  double offered_rate = 0;  // 0: flat out.
  int items_per_call = 1;   // Commands per call, for batches.
  std::vector<double> latencies_us;

  // Items (calls, or commands in batches) per second.
  double throughput() const { return seconds > 0 ? ok * items_per_call / seconds : 0; }
  double Percentile(double p) const;
};

// Prints a measurement as a table row, or a JSON line.
void Print(const Measurement& m, bool json);
void PrintHeader(bool json);

// Starts one asynchronous call and calls done(ok) exactly once when it completes.
using Issuer = std::function<void(std::function<void(bool)>)>;

// Issues calls through `issue` keeping at most `concurrency` in flight, either flat out
// (rate 0) or at `rate` calls per second (open loop, latency from the intended send time), for
// `seconds`, or until `max_calls` calls or `stop`.
Measurement Drive(const std::string& name, int concurrency, double rate, double seconds,
                  const Issuer& issue, uint64_t max_calls = 0,
                  const std::atomic<bool>* stop = nullptr);

struct RebuildOutcome {
  bool ok = false;
  uint64_t events = 0;
  double seconds = 0;
  std::string error;
};

// Runs a rebuild to its end and times it from the call to the last message.
RebuildOutcome TimeRebuild(v1::ProjectionAdmin::Stub& admin,
                           const v1::RebuildProjectionRequest& request);

// A suffix that keeps this run's account numbers apart from earlier runs'.
std::string RunTag();

// Opens `count` accounts numbered `prefix`0, `prefix`1, ... with a large balance; exits the
// process when one fails.
std::vector<std::string> OpenAccounts(v1::AccountCommands::Stub& stub, int count,
                                      const std::string& prefix);

// Ping calls: the no-op baseline.
Issuer PingIssuer(v1::AccountCommands::Stub& stub);
// A mix of deposits (3 in 5) and withdrawals over `ids`.
Issuer CommandIssuer(v1::AccountCommands::Stub& stub, const std::vector<std::string>& ids);
// ExecuteCommands calls of `size` commands each, the same mix; ok when every command was.
Issuer BatchIssuer(v1::AccountCommands::Stub& stub, const std::vector<std::string>& ids, int size);
// GetAccountSummary calls over `ids`.
Issuer QueryIssuer(v1::AccountQueries::Stub& stub, const std::vector<std::string>& ids);

}  // namespace fidelis::clients
