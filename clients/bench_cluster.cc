#include "clients/bench_cluster.h"

#include <cstdio>
#include <memory>
#include <thread>

#include "clients/bench_driver.h"
#include "clients/client_util.h"
#include "fidelis/v1/accounts.grpc.pb.h"
#include "grpcpp/client_context.h"

namespace fidelis::clients {
namespace {

// Adds `m` to `pool`: calls, time and latencies, so that throughput and percentiles are over
// every round.
void Pool(Measurement& pool, const Measurement& m) {
  pool.name = m.name;
  pool.items_per_call = m.items_per_call;
  pool.seconds += m.seconds;
  pool.ok += m.ok;
  pool.failed += m.failed;
  pool.latencies_us.insert(pool.latencies_us.end(), m.latencies_us.begin(), m.latencies_us.end());
}

double Ratio(double a, double b) { return b > 0 ? a / b : 0; }

// Prints one pooled measurement of `label`, with its ratios to `base` (the first target's).
void PrintCompared(const std::string& label, const Measurement& m, const Measurement& base,
                   bool json) {
  const double throughput = Ratio(m.throughput(), base.throughput());
  const double p50 = Ratio(m.Percentile(50), base.Percentile(50));
  const double p99 = Ratio(m.Percentile(99), base.Percentile(99));
  if (json) {
    std::printf(
        "{\"target\":\"%s\",\"name\":\"%s\",\"seconds\":%.2f,\"ok\":%llu,\"failed\":%llu,"
        "\"throughput\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"throughput_ratio\":%.3f,"
        "\"p50_ratio\":%.3f,\"p99_ratio\":%.3f}\n",
        label.c_str(), m.name.c_str(), m.seconds, static_cast<unsigned long long>(m.ok),
        static_cast<unsigned long long>(m.failed), m.throughput(), m.Percentile(50),
        m.Percentile(99), throughput, p50, p99);
  } else {
    std::printf("%-10s %-30s %10.0f/s %9.0f %9.0f %8llu %7.3f %7.3f %7.3f\n", label.c_str(),
                m.name.c_str(), m.throughput(), m.Percentile(50), m.Percentile(99),
                static_cast<unsigned long long>(m.failed), throughput, p50, p99);
  }
  std::fflush(stdout);
}

void PrintComparedHeader(const std::string& base, bool json) {
  if (json) return;
  std::printf("%-10s %-30s %12s %9s %9s %8s %23s\n", "TARGET", "MEASUREMENT", "THROUGHPUT",
              "P50(us)", "P99(us)", "FAILED", ("ratio to " + base).c_str());
  std::printf("%-10s %-30s %12s %9s %9s %8s %7s %7s %7s\n", "", "", "", "", "", "", "thru", "p50",
              "p99");
}

// Waits until `stub`'s node serves `account_id`: a cluster node's replica may lag the node the
// account was opened on.
bool WaitForAccount(v1::AccountQueries::Stub& stub, const std::string& account_id) {
  for (int attempt = 0; attempt < 1200; ++attempt) {
    v1::GetAccountSummaryRequest request;
    request.set_account_id(account_id);
    v1::AccountSummary summary;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (stub.GetAccountSummary(&context, request, &summary).ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace

bool ParseTarget(const std::string& text, Target* target) {
  const size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0 || equals + 1 == text.size()) return false;
  target->label = text.substr(0, equals);
  target->address = text.substr(equals + 1);
  return true;
}

int RunCompare(const std::vector<Target>& targets, int accounts, double seconds, int concurrency,
               int batch, int batch_concurrency, int rounds, bool json) {
  struct Side {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::AccountCommands::Stub> stub;
    std::vector<std::string> ids;
    Measurement unary, batched;
  };
  std::vector<Side> sides(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    sides[i].channel = Connect(targets[i].address);
    sides[i].stub = std::make_unique<v1::AccountCommands::Stub>(sides[i].channel);
    sides[i].ids =
        OpenAccounts(*sides[i].stub, accounts, "C" + std::to_string(i) + "T" + RunTag() + "N");
  }
  const std::string unary_name = "commands, " + std::to_string(concurrency) + " in flight";
  const std::string batch_name = "ExecuteCommands of " + std::to_string(batch) + ", " +
                                 std::to_string(batch_concurrency) + " in flight";
  // Round-robin, so that a slow spell of the machine falls on every target alike.
  for (int round = 0; round < rounds; ++round) {
    for (Side& side : sides) {
      Pool(side.unary,
           Drive(unary_name, concurrency, 0, seconds, CommandIssuer(*side.stub, side.ids)));
      if (batch > 0) {
        Measurement m = Drive(batch_name, batch_concurrency, 0, seconds,
                              BatchIssuer(*side.stub, side.ids, batch));
        m.items_per_call = batch;
        Pool(side.batched, m);
      }
    }
  }
  PrintComparedHeader(targets[0].label, json);
  uint64_t failed = 0;
  for (size_t i = 0; i < sides.size(); ++i) {
    PrintCompared(targets[i].label, sides[i].unary, sides[0].unary, json);
    failed += sides[i].unary.failed;
  }
  if (batch > 0) {
    for (size_t i = 0; i < sides.size(); ++i) {
      PrintCompared(targets[i].label, sides[i].batched, sides[0].batched, json);
      failed += sides[i].batched.failed;
    }
  }
  if (!json) {
    std::printf("(%d rounds of %.0f s per target and measurement; batch latency is per call)\n",
                rounds, seconds);
  }
  return failed == 0 ? 0 : 1;
}

int RunContention(const std::string& a, const std::string& b, int accounts, double seconds,
                  int concurrency, int rounds, bool json) {
  auto channel_a = Connect(a);
  auto channel_b = Connect(b);
  v1::AccountCommands::Stub stub_a(channel_a);
  v1::AccountCommands::Stub stub_b(channel_b);
  v1::AccountQueries::Stub queries_b(channel_b);
  const std::vector<std::string> ids = OpenAccounts(stub_a, accounts, "K" + RunTag() + "N");
  if (!WaitForAccount(queries_b, ids.back())) {
    std::fprintf(stderr, "%s never served the accounts opened through %s\n", b.c_str(), a.c_str());
    return 1;
  }
  Measurement alone, both;
  for (int round = 0; round < rounds; ++round) {
    Pool(alone, Drive("one node, " + std::to_string(concurrency) + " in flight", concurrency, 0,
                      seconds, CommandIssuer(stub_a, ids)));
    Measurement on_a, on_b;
    std::thread other(
        [&] { on_b = Drive("b", concurrency / 2, 0, seconds, CommandIssuer(stub_b, ids)); });
    on_a = Drive("a", concurrency - concurrency / 2, 0, seconds, CommandIssuer(stub_a, ids));
    other.join();
    // Both ran at once: their calls add up over one span of time.
    Measurement together;
    together.name = "two nodes, same accounts";
    together.seconds = std::max(on_a.seconds, on_b.seconds);
    together.ok = on_a.ok + on_b.ok;
    together.failed = on_a.failed + on_b.failed;
    together.latencies_us = std::move(on_a.latencies_us);
    together.latencies_us.insert(together.latencies_us.end(), on_b.latencies_us.begin(),
                                 on_b.latencies_us.end());
    Pool(both, together);
  }
  PrintComparedHeader("one node", json);
  PrintCompared("cluster", alone, alone, json);
  PrintCompared("cluster", both, alone, json);
  if (!json) {
    std::printf("(%d rounds of %.0f s each, alternating; %d accounts)\n", rounds, seconds,
                accounts);
  }
  return alone.failed + both.failed == 0 ? 0 : 1;
}

int RunFill(const std::string& server, int accounts, uint64_t events, int batch, bool json) {
  auto channel = Connect(server);
  v1::AccountCommands::Stub stub(channel);
  const std::vector<std::string> ids = OpenAccounts(stub, accounts, "F" + RunTag() + "N");
  const uint64_t calls = (events + batch - 1) / batch;
  Measurement m = Drive("fill: ExecuteCommands of " + std::to_string(batch), 16, 0, 86400,
                        BatchIssuer(stub, ids, batch), calls);
  m.items_per_call = batch;
  PrintHeader(json);
  Print(m, json);
  return m.failed == 0 ? 0 : 1;
}

}  // namespace fidelis::clients
