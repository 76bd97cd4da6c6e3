// fidelis-bench: the load generator and benchmark driver.
//
//   fidelis-bench commands [--server A] [--accounts N] [--seconds T] [--concurrency C]
//                          [--rate R] [--batch B] [--batch-concurrency BC] [--json]
//     Opens N accounts, then measures, in the same run, the no-op Ping RPC (the baseline) and
//     a mix of deposits and withdrawals: flat out with C calls in flight, then both at half
//     of the commands' maximum throughput (open loop, latency from the intended send time).
//     With --rate both run only at R calls per second. With --batch B, also ExecuteCommands
//     flat out, with calls of B commands each and BC of them in flight (throughput in
//     commands, latency per call).
//   fidelis-bench stream-length [--server A] [--events N] [--calls M]
//     Deposit latency on an account with N events against one on a new account.
//   fidelis-bench rebuild [--server A] [--projection P] [--batch-size B] [--mode M]
//     Times RebuildProjection (in-place by default) from the call to the DONE message.
//   fidelis-bench rebuild-under-load [--server A] [--projection P] [--accounts N]
//                                    [--seconds T] [--concurrency C] [--rate R] [--rounds K]
//     Live traffic first: times a blue-green rebuild alone; measures commands at a fixed
//     offered rate (R, or half the flat-out maximum measured first) for T seconds with no
//     rebuild (after T seconds of warm-up at that rate); then the same rate during a
//     blue-green rebuild, for as long as it runs; K times over; then the baseline once more. Each
//     round's ratios are against the better of the baselines on either side of it; the pooled
//     ratios put every latency of the K rebuilds against every latency of the K + 1 baselines.
//
// Prints a table, and with --json one JSON object per measurement. With --trace FILE, also writes
// one line per successful call to FILE: its intended send time (Unix seconds), its latency (us)
// and the measurement's name, to line latencies up with the server's log.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "clients/client_util.h"
#include "fidelis/v1/accounts.grpc.pb.h"
#include "fidelis/v1/admin.grpc.pb.h"
#include "grpcpp/client_context.h"

namespace fidelis::clients {
namespace {

using Clock = std::chrono::steady_clock;

// The --trace file, or null; set once before the first measurement.
FILE* trace_file = nullptr;

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
  double Percentile(double p) const {
    if (latencies_us.empty()) return 0;
    std::vector<double> sorted = latencies_us;
    size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p / 100.0 * sorted.size()));
    std::nth_element(sorted.begin(), sorted.begin() + index, sorted.end());
    return sorted[index];
  }
};

void Print(const Measurement& m, bool json) {
  if (json) {
    std::printf(
        "{\"name\":\"%s\",\"offered_rate\":%.0f,\"seconds\":%.2f,\"ok\":%llu,\"failed\":%llu,"
        "\"commands_per_call\":%d,\"throughput\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f,"
        "\"p999_us\":%.0f}\n",
        m.name.c_str(), m.offered_rate, m.seconds, static_cast<unsigned long long>(m.ok),
        static_cast<unsigned long long>(m.failed), m.items_per_call, m.throughput(),
        m.Percentile(50), m.Percentile(99), m.Percentile(99.9));
  } else {
    std::printf(
        "%-28s %10s %10.0f/s %9.0f %9.0f %9.0f %8llu\n", m.name.c_str(),
        m.offered_rate > 0 ? std::to_string(static_cast<long>(m.offered_rate)).c_str() : "max",
        m.throughput(), m.Percentile(50), m.Percentile(99), m.Percentile(99.9),
        static_cast<unsigned long long>(m.failed));
  }
  std::fflush(stdout);
}

void PrintHeader(bool json) {
  if (!json) {
    std::printf("%-28s %10s %12s %9s %9s %9s %8s\n", "MEASUREMENT", "OFFERED", "THROUGHPUT",
                "P50(us)", "P99(us)", "P99.9(us)", "FAILED");
  }
}

// Issues calls through `issue(done)` keeping at most `concurrency` in flight, either flat out
// (rate 0) or at `rate` calls per second (open loop), for `seconds`. `issue` must start one
// asynchronous call and invoke done(ok) exactly once when it completes.
Measurement Drive(const std::string& name, int concurrency, double rate, double seconds,
                  const std::function<void(std::function<void(bool)>)>& issue,
                  uint64_t max_calls = 0, const std::atomic<bool>* stop = nullptr) {
  Measurement m;
  m.name = name;
  m.offered_rate = rate;
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  const auto start = Clock::now();
  const double wall_start =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  auto launch = [&](Clock::time_point intended) {
    issue([&, intended](bool ok) {
      const double us = std::chrono::duration<double, std::micro>(Clock::now() - intended).count();
      std::lock_guard<std::mutex> lock(mu);
      --in_flight;
      if (Clock::now() <= end) {
        if (ok) {
          ++m.ok;
          m.latencies_us.push_back(us);
          if (trace_file != nullptr) {
            std::fprintf(trace_file, "%.6f %.0f %s\n",
                         wall_start + std::chrono::duration<double>(intended - start).count(), us,
                         name.c_str());
          }
        } else {
          ++m.failed;
        }
      }
      cv.notify_all();
    });
  };
  uint64_t issued = 0;
  if (rate <= 0) {
    while (Clock::now() < end && (max_calls == 0 || issued++ < max_calls) &&
           !(stop && stop->load())) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < concurrency; });
      ++in_flight;
      lock.unlock();
      launch(Clock::now());
    }
  } else {
    const auto interval =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
    for (auto next = start; next < end && !(stop && stop->load()); next += interval) {
      std::this_thread::sleep_until(next);
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < concurrency; });
      ++in_flight;
      lock.unlock();
      launch(next);  // Latency counts from the intended send time (no coordinated omission).
    }
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return in_flight == 0; });
  m.seconds = std::min(seconds, std::chrono::duration<double>(Clock::now() - start).count());
  return m;
}

struct RebuildOutcome {
  bool ok = false;
  uint64_t events = 0;
  double seconds = 0;
  std::string error;
};

// Runs a rebuild to its end and times it from the call to the last message.
RebuildOutcome TimeRebuild(v1::ProjectionAdmin::Stub& admin,
                           const v1::RebuildProjectionRequest& request) {
  RebuildOutcome outcome;
  grpc::ClientContext context;
  const auto start = Clock::now();
  auto reader = admin.RebuildProjection(&context, request);
  v1::RebuildProgress progress;
  while (reader->Read(&progress)) {
  }
  grpc::Status status = reader->Finish();
  outcome.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  outcome.events = progress.result().events_processed();
  outcome.ok = status.ok() && progress.phase() == v1::DONE;
  outcome.error = status.ok() ? progress.result().failure() : status.error_message();
  return outcome;
}

struct Call {
  grpc::ClientContext context;
  v1::MakeDepositRequest deposit;
  v1::MakeWithdrawalRequest withdrawal;
  v1::CommandResult result;
  v1::PingRequest ping;
  v1::PingResponse pong;
  v1::ExecuteCommandsRequest batch;
  v1::ExecuteCommandsResponse outcomes;
};

std::vector<std::string> OpenAccounts(v1::AccountCommands::Stub& stub, int count,
                                      const std::string& prefix) {
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) {
    v1::OpenAccountRequest request;
    request.set_account_number(prefix + std::to_string(i));
    request.set_holder_name("Bench");
    request.mutable_opening_deposit()->set_minor_units(1'000'000'000);
    request.mutable_opening_deposit()->set_currency("EUR");
    v1::CommandResult result;
    grpc::ClientContext context;
    grpc::Status status = stub.OpenAccount(&context, request, &result);
    if (!status.ok()) {
      std::fprintf(stderr, "opening accounts failed: %s\n", status.error_message().c_str());
      std::exit(1);
    }
    ids.push_back(result.account_id());
  }
  return ids;
}

std::function<void(std::function<void(bool)>)> PingIssuer(v1::AccountCommands::Stub& stub) {
  return [&stub](std::function<void(bool)> done) {
    auto* call = new Call;
    stub.async()->Ping(&call->context, &call->ping, &call->pong, [call, done](grpc::Status s) {
      delete call;  // Before done(): once the last call is done, the caller may exit.
      done(s.ok());
    });
  };
}

std::function<void(std::function<void(bool)>)> CommandIssuer(v1::AccountCommands::Stub& stub,
                                                             const std::vector<std::string>& ids) {
  auto counter = std::make_shared<std::atomic<uint64_t>>(0);
  return [&stub, &ids, counter](std::function<void(bool)> done) {
    const uint64_t n = counter->fetch_add(1);
    auto* call = new Call;
    auto finish = [call, done](grpc::Status s) {
      delete call;  // Before done(): once the last call is done, the caller may exit.
      done(s.ok());
    };
    const std::string& id = ids[(n * 2654435761u) % ids.size()];
    if (n % 5 < 3) {
      call->deposit.set_account_id(id);
      call->deposit.mutable_amount()->set_minor_units(100 + n % 900);
      call->deposit.mutable_amount()->set_currency("EUR");
      stub.async()->MakeDeposit(&call->context, &call->deposit, &call->result, finish);
    } else {
      call->withdrawal.set_account_id(id);
      call->withdrawal.mutable_amount()->set_minor_units(50 + n % 500);
      call->withdrawal.mutable_amount()->set_currency("EUR");
      stub.async()->MakeWithdrawal(&call->context, &call->withdrawal, &call->result, finish);
    }
  };
}

// ExecuteCommands calls of `size` commands each, the same mix as CommandIssuer. A call counts
// as ok when every one of its commands succeeded.
std::function<void(std::function<void(bool)>)> BatchIssuer(v1::AccountCommands::Stub& stub,
                                                           const std::vector<std::string>& ids,
                                                           int size) {
  auto counter = std::make_shared<std::atomic<uint64_t>>(0);
  return [&stub, &ids, counter, size](std::function<void(bool)> done) {
    auto* call = new Call;
    for (int i = 0; i < size; ++i) {
      const uint64_t n = counter->fetch_add(1);
      v1::BatchCommand* command = call->batch.add_commands();
      v1::MakeDepositRequest* deposit = n % 5 < 3 ? command->mutable_make_deposit() : nullptr;
      v1::MakeWithdrawalRequest* withdrawal =
          deposit ? nullptr : command->mutable_make_withdrawal();
      const std::string& id = ids[(n * 2654435761u) % ids.size()];
      if (deposit) {
        deposit->set_account_id(id);
        deposit->mutable_amount()->set_minor_units(100 + n % 900);
        deposit->mutable_amount()->set_currency("EUR");
      } else {
        withdrawal->set_account_id(id);
        withdrawal->mutable_amount()->set_minor_units(50 + n % 500);
        withdrawal->mutable_amount()->set_currency("EUR");
      }
    }
    stub.async()->ExecuteCommands(
        &call->context, &call->batch, &call->outcomes, [call, done](grpc::Status s) {
          bool ok = s.ok();
          for (const v1::BatchOutcome& outcome : call->outcomes.outcomes()) {
            ok = ok && outcome.status().code() == 0;
          }
          delete call;  // Before done(): once the last call is done, the caller may exit.
          done(ok);
        });
  };
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"fidelis-bench: load generator and benchmarks for a Fidelis server"};
  app.require_subcommand(1);
  std::string server = "127.0.0.1:50051";
  bool json = false;
  app.add_option("--server", server, "Server address")->capture_default_str();
  app.add_flag("--json", json, "Print JSON lines instead of a table");
  std::string trace;
  app.add_option("--trace", trace,
                 "Write each call's send time (Unix seconds), latency (us) and measurement here");
  int accounts = 1000, concurrency = 64;
  double seconds = 10, rate = 0;
  CLI::App* commands = app.add_subcommand("commands", "Command throughput and latency vs Ping");
  commands->add_option("--accounts", accounts)->capture_default_str();
  commands->add_option("--seconds", seconds, "Seconds per measurement")->capture_default_str();
  commands->add_option("--concurrency", concurrency, "Calls in flight")->capture_default_str();
  commands->add_option("--rate", rate, "Offered calls per second (default: flat out, then 50%)");
  int batch = 0, batch_concurrency = 16;
  commands->add_option("--batch", batch, "Also measure ExecuteCommands with this many per call")
      ->check(CLI::Range(0, 1000));
  commands->add_option("--batch-concurrency", batch_concurrency, "ExecuteCommands calls in flight")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  int stream_events = 100000, calls = 2000;
  CLI::App* stream = app.add_subcommand("stream-length", "Cost of a command vs stream length");
  stream->add_option("--events", stream_events)->capture_default_str();
  stream->add_option("--calls", calls)->capture_default_str();
  std::string projection = "AccountSummary";
  int batch_size = 0;
  CLI::App* rebuild = app.add_subcommand("rebuild", "Time a projection rebuild");
  rebuild->add_option("--projection", projection)->capture_default_str();
  rebuild->add_option("--batch-size", batch_size);
  std::string mode = "in-place";
  rebuild->add_option("--mode", mode, "in-place or blue-green")
      ->check(CLI::IsMember({"in-place", "blue-green"}))
      ->capture_default_str();
  CLI::App* under_load = app.add_subcommand(
      "rebuild-under-load", "Command throughput and latency during a blue-green rebuild");
  under_load->add_option("--projection", projection)->capture_default_str();
  under_load->add_option("--accounts", accounts)->capture_default_str();
  under_load->add_option("--seconds", seconds, "Seconds of the idle measurements")
      ->capture_default_str();
  under_load->add_option("--concurrency", concurrency, "Calls in flight")->capture_default_str();
  under_load->add_option("--rate", rate, "Offered calls per second (default: 50% of max)");
  int rounds = 1;
  under_load->add_option("--rounds", rounds, "Rebuilds under load, each after a baseline")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!trace.empty()) {
    trace_file = std::fopen(trace.c_str(), "w");
    if (trace_file == nullptr) {
      std::fprintf(stderr, "cannot write the trace file %s\n", trace.c_str());
      return 2;
    }
  }

  auto channel = Connect(server);
  v1::AccountCommands::Stub stub(channel);
  const std::string run =
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000000);

  if (*commands) {
    std::vector<std::string> ids = OpenAccounts(stub, accounts, "B" + run + "N");
    PrintHeader(json);
    if (rate > 0) {
      Print(Drive("ping", concurrency, rate, seconds, PingIssuer(stub)), json);
      Print(Drive("commands", concurrency, rate, seconds, CommandIssuer(stub, ids)), json);
      return 0;
    }
    Measurement ping = Drive("ping (no-op baseline)", concurrency, 0, seconds, PingIssuer(stub));
    Print(ping, json);
    Measurement cmds =
        Drive("commands (deposit/withdraw)", concurrency, 0, seconds, CommandIssuer(stub, ids));
    Print(cmds, json);
    Measurement batched;
    if (batch > 0) {
      batched = Drive("commands in batches of " + std::to_string(batch), batch_concurrency, 0,
                      seconds, BatchIssuer(stub, ids, batch));
      batched.items_per_call = batch;
      Print(batched, json);
    }
    const double half = cmds.throughput() / 2;
    Print(Drive("ping @50% of command max", concurrency, half, seconds, PingIssuer(stub)), json);
    Print(Drive("commands @50% of max", concurrency, half, seconds, CommandIssuer(stub, ids)),
          json);
    if (!json) {
      std::printf("commands / ping throughput ratio: %.3f\n",
                  ping.throughput() > 0 ? cmds.throughput() / ping.throughput() : 0);
      if (batch > 0) {
        std::printf("batched commands / ping throughput ratio: %.3f (latency is per call)\n",
                    ping.throughput() > 0 ? batched.throughput() / ping.throughput() : 0);
      }
    }
    return 0;
  }

  if (*stream) {
    std::vector<std::string> ids = OpenAccounts(stub, 2, "L" + run + "N");
    const std::vector<std::string> long_one = {ids[0]}, new_one = {ids[1]};
    // Grow the first account's stream (one account: the commands contend and retry, which is
    // fine for setting up).
    Measurement grown = Drive("grow", 16, 0, 1e9, CommandIssuer(stub, long_one), stream_events);
    PrintHeader(json);
    Measurement on_long = Drive("deposit, " + std::to_string(grown.ok + 1) + "-event stream", 1, 0,
                                1e9, CommandIssuer(stub, long_one), calls);
    Measurement on_new =
        Drive("deposit, new stream", 1, 0, 1e9, CommandIssuer(stub, new_one), calls);
    Print(on_long, json);
    Print(on_new, json);
    if (!json) {
      std::printf("long / new p50 latency ratio: %.3f\n",
                  on_new.Percentile(50) > 0 ? on_long.Percentile(50) / on_new.Percentile(50) : 0);
    }
    return 0;
  }

  if (*rebuild) {
    v1::ProjectionAdmin::Stub admin(channel);
    v1::RebuildProjectionRequest request;
    request.set_projection(projection);
    request.set_batch_size(batch_size);
    request.set_mode(mode == "blue-green" ? v1::BLUE_GREEN : v1::IN_PLACE);
    const RebuildOutcome outcome = TimeRebuild(admin, request);
    if (!outcome.ok) {
      std::fprintf(stderr, "rebuild failed: %s\n", outcome.error.c_str());
      return 1;
    }
    if (json) {
      std::printf(
          "{\"name\":\"rebuild %s\",\"events\":%llu,\"seconds\":%.3f,"
          "\"events_per_second\":%.0f}\n",
          projection.c_str(), static_cast<unsigned long long>(outcome.events), outcome.seconds,
          outcome.events / outcome.seconds);
    } else {
      std::printf("rebuild %s (%s): %llu events in %.3f s = %.0f events/s end to end\n",
                  projection.c_str(), mode.c_str(), static_cast<unsigned long long>(outcome.events),
                  outcome.seconds, outcome.events / outcome.seconds);
    }
    return 0;
  }

  if (*under_load) {
    v1::ProjectionAdmin::Stub admin(channel);
    v1::RebuildProjectionRequest request;
    request.set_projection(projection);
    request.set_mode(v1::BLUE_GREEN);
    const RebuildOutcome alone = TimeRebuild(admin, request);
    if (!alone.ok) {
      std::fprintf(stderr, "rebuild failed: %s\n", alone.error.c_str());
      return 1;
    }
    std::vector<std::string> ids = OpenAccounts(stub, accounts, "R" + run + "N");
    PrintHeader(json);
    if (rate <= 0) {
      Measurement max =
          Drive("commands flat out", concurrency, 0, seconds, CommandIssuer(stub, ids));
      Print(max, json);
      rate = max.throughput() / 2;
      // Lets the flushes and compactions of the flat-out run finish, so they do not weigh on
      // the baseline.
      std::this_thread::sleep_for(std::chrono::seconds(3));
    }
    // A first run at the offered rate, not counted: the first baseline measured straight after
    // the flat-out run (or the live projections' catch-up) carried their flushes and
    // compactions (p99 95 ms against 13-15 ms for the later ones, in one run).
    Print(Drive("commands, warm-up (not counted)", concurrency, rate, seconds,
                CommandIssuer(stub, ids)),
          json);
    // Baselines and rebuilds alternate: idle[0], during[0], idle[1], ..., during[K-1], idle[K].
    std::vector<Measurement> idle, during;
    std::vector<RebuildOutcome> loaded;
    auto baseline = [&](const std::string& name) {
      idle.push_back(Drive(name, concurrency, rate, seconds, CommandIssuer(stub, ids)));
      Print(idle.back(), json);
    };
    baseline("commands, no rebuild");
    for (int round = 0; round < rounds; ++round) {
      std::atomic<bool> done{false};
      RebuildOutcome outcome;
      std::thread rebuilder([&] {
        outcome = TimeRebuild(admin, request);
        done.store(true);
      });
      during.push_back(Drive("commands, during rebuild", concurrency, rate, 1e9,
                             CommandIssuer(stub, ids), 0, &done));
      rebuilder.join();
      Print(during.back(), json);
      if (!outcome.ok) {
        std::fprintf(stderr, "rebuild under load failed: %s\n", outcome.error.c_str());
        return 1;
      }
      loaded.push_back(outcome);
      // The baseline again once the rebuild is over; each round's ratios are taken against
      // the better of the baselines on either side, so background work left from either side
      // cannot flatter them.
      baseline("commands, no rebuild again");
    }
    auto pooled = [](const std::vector<Measurement>& parts) {
      Measurement all;
      for (const Measurement& m : parts) {
        all.ok += m.ok;
        all.seconds += m.seconds;
        all.latencies_us.insert(all.latencies_us.end(), m.latencies_us.begin(),
                                m.latencies_us.end());
      }
      return all;
    };
    auto ratios = [](const Measurement& during, double idle_throughput, double idle_p99) {
      return std::pair<double, double>{
          idle_throughput > 0 ? during.throughput() / idle_throughput : 0,
          idle_p99 > 0 ? during.Percentile(99) / idle_p99 : 0};
    };
    const Measurement all_idle = pooled(idle), all_during = pooled(during);
    const auto [throughput_ratio, p99_ratio] =
        ratios(all_during, all_idle.throughput(), all_idle.Percentile(99));
    double rebuilt = 0, rebuild_seconds = 0;
    for (const RebuildOutcome& r : loaded) {
      rebuilt += r.events;
      rebuild_seconds += r.seconds;
    }
    if (json) {
      std::printf(
          "{\"name\":\"rebuild under load\",\"rounds\":%d,\"rebuild_alone_events_per_second\":%.0f,"
          "\"rebuild_loaded_events_per_second\":%.0f,\"throughput_ratio\":%.3f,"
          "\"p99_ratio\":%.3f,\"idle_p99_us\":%.0f,\"during_p99_us\":%.0f}\n",
          rounds, alone.events / alone.seconds, rebuilt / rebuild_seconds, throughput_ratio,
          p99_ratio, all_idle.Percentile(99), all_during.Percentile(99));
      return 0;
    }
    std::printf("blue-green rebuild of %s alone: %llu events in %.2f s = %.0f events/s\n",
                projection.c_str(), static_cast<unsigned long long>(alone.events), alone.seconds,
                alone.events / alone.seconds);
    for (int round = 0; round < rounds; ++round) {
      const double idle_p99 = std::min(idle[round].Percentile(99), idle[round + 1].Percentile(99));
      const auto [t, p] =
          ratios(during[round], std::max(idle[round].throughput(), idle[round + 1].throughput()),
                 idle_p99);
      std::printf(
          "round %d: blue-green rebuild of %s under load: %llu events in %.2f s = %.0f events/s;"
          " during / better adjacent baseline: throughput %.3f, p99 latency %.3f (%.0f us against"
          " %.0f us)\n",
          round + 1, projection.c_str(), static_cast<unsigned long long>(loaded[round].events),
          loaded[round].seconds, loaded[round].events / loaded[round].seconds, t, p,
          during[round].Percentile(99), idle_p99);
    }
    std::printf("pooled over %d rebuild(s) and %d baselines: p99 %.0f us during, %.0f us idle\n",
                rounds, rounds + 1, all_during.Percentile(99), all_idle.Percentile(99));
    std::printf("during / idle: throughput %.3f, p99 latency %.3f\n", throughput_ratio, p99_ratio);
    return 0;
  }
  return 2;
}

}  // namespace fidelis::clients

int main(int argc, char** argv) {
  // The load generator shares the machine with the server it measures: no lock-order tracking
  // (on in Debian's Abseil build, see server/main.cc) for gRPC's mutexes here either.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return fidelis::clients::Main(argc, argv);
}
