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
//   fidelis-bench queries [--server A] [--accounts N] [--seconds T] [--concurrency C]
//                         [--rounds K]
//     GetAccountSummary flat out with C calls in flight against the no-op Ping in the same run,
//     in K rounds of each, alternating; the ratio is of the pooled throughputs.
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
//   fidelis-bench compare --target LABEL=ADDR [--target ...] [--accounts N] [--seconds T]
//                         [--concurrency C] [--batch B] [--batch-concurrency BC] [--rounds K]
//     Unary commands and ExecuteCommands on each target in turn, K rounds: each target's
//     pooled throughput, p50 and p99, and their ratios to the first target's (used to put the
//     embedded log, a JetStream stream of one replica and one of three side by side).
//   fidelis-bench contention --server A --other B [--accounts N] [--seconds T] [--concurrency C]
//                            [--rounds K]
//     Two nodes of one cluster writing to the same accounts (C/2 calls in flight each) against
//     node A alone (C in flight), alternating, K rounds.
//   fidelis-bench fill [--server A] [--accounts N] --events E [--batch B]
//     Appends about E events in ExecuteCommands calls of B, 16 in flight.
//
// The machinery (driving calls, measuring, the calls each benchmark makes) is in
// bench_driver.h. Prints a table, and with --json one JSON object per measurement. With --trace
// FILE, also writes one line per successful call to FILE: its intended send time (Unix seconds),
// its latency (us) and the measurement's name, to line latencies up with the server's log.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "clients/bench_cluster.h"
#include "clients/bench_driver.h"
#include "clients/client_util.h"

namespace fidelis::clients {
namespace {

struct Options {
  std::string server = "127.0.0.1:50051";
  bool json = false;
  std::string trace;
  int accounts = 1000;
  int concurrency = 64;
  double seconds = 10;
  double rate = 0;
  int batch = 0;
  int batch_concurrency = 16;
  int stream_events = 100000;
  int calls = 2000;
  std::string projection = "AccountSummary";
  int batch_size = 0;
  std::string mode = "in-place";
  int rounds = 1;
  int query_rounds = 3;
  int compare_rounds = 2;
  std::vector<std::string> targets;
  std::string other;
  uint64_t fill_events = 0;
  int fill_batch = 100;
};

int RunCommands(const Options& o, v1::AccountCommands::Stub& stub) {
  std::vector<std::string> ids = OpenAccounts(stub, o.accounts, "B" + RunTag() + "N");
  PrintHeader(o.json);
  if (o.rate > 0) {
    Print(Drive("ping", o.concurrency, o.rate, o.seconds, PingIssuer(stub)), o.json);
    Print(Drive("commands", o.concurrency, o.rate, o.seconds, CommandIssuer(stub, ids)), o.json);
    return 0;
  }
  Measurement ping = Drive("ping (no-op baseline)", o.concurrency, 0, o.seconds, PingIssuer(stub));
  Print(ping, o.json);
  Measurement cmds =
      Drive("commands (deposit/withdraw)", o.concurrency, 0, o.seconds, CommandIssuer(stub, ids));
  Print(cmds, o.json);
  Measurement batched;
  if (o.batch > 0) {
    batched = Drive("commands in batches of " + std::to_string(o.batch), o.batch_concurrency, 0,
                    o.seconds, BatchIssuer(stub, ids, o.batch));
    batched.items_per_call = o.batch;
    Print(batched, o.json);
  }
  const double half = cmds.throughput() / 2;
  Print(Drive("ping @50% of command max", o.concurrency, half, o.seconds, PingIssuer(stub)),
        o.json);
  Print(Drive("commands @50% of max", o.concurrency, half, o.seconds, CommandIssuer(stub, ids)),
        o.json);
  if (!o.json) {
    std::printf("commands / ping throughput ratio: %.3f\n",
                ping.throughput() > 0 ? cmds.throughput() / ping.throughput() : 0);
    if (o.batch > 0) {
      std::printf("batched commands / ping throughput ratio: %.3f (latency is per call)\n",
                  ping.throughput() > 0 ? batched.throughput() / ping.throughput() : 0);
    }
  }
  return 0;
}

int RunQueries(const Options& o, v1::AccountCommands::Stub& stub,
               v1::AccountQueries::Stub& queries) {
  std::vector<std::string> ids = OpenAccounts(stub, o.accounts, "Q" + RunTag() + "N");
  PrintHeader(o.json);
  // Rounds alternate the baseline and the queries, so that a slow spell of the machine weighs
  // on both; the ratio is of the pooled throughputs.
  double ping_calls = 0, ping_seconds = 0, read_calls = 0, read_seconds = 0;
  uint64_t failed = 0;
  for (int round = 0; round < o.query_rounds; ++round) {
    Measurement ping =
        Drive("ping (no-op baseline)", o.concurrency, 0, o.seconds, PingIssuer(stub));
    Print(ping, o.json);
    Measurement reads =
        Drive("GetAccountSummary", o.concurrency, 0, o.seconds, QueryIssuer(queries, ids));
    Print(reads, o.json);
    ping_calls += ping.ok;
    ping_seconds += ping.seconds;
    read_calls += reads.ok;
    read_seconds += reads.seconds;
    failed += reads.failed;
  }
  const double ratio = ping_calls > 0 && read_seconds > 0
                           ? (read_calls / read_seconds) / (ping_calls / ping_seconds)
                           : 0;
  if (o.json) {
    std::printf("{\"name\":\"queries vs ping\",\"rounds\":%d,\"ratio\":%.3f}\n", o.query_rounds,
                ratio);
  } else {
    std::printf("GetAccountSummary / ping throughput ratio over %d rounds: %.3f\n", o.query_rounds,
                ratio);
  }
  return failed == 0 ? 0 : 1;
}

int RunStreamLength(const Options& o, v1::AccountCommands::Stub& stub) {
  std::vector<std::string> ids = OpenAccounts(stub, 2, "L" + RunTag() + "N");
  const std::vector<std::string> long_one = {ids[0]}, new_one = {ids[1]};
  // Grow the first account's stream (one account: the commands contend and retry, which is
  // fine for setting up).
  Measurement grown = Drive("grow", 16, 0, 1e9, CommandIssuer(stub, long_one), o.stream_events);
  PrintHeader(o.json);
  Measurement on_long = Drive("deposit, " + std::to_string(grown.ok + 1) + "-event stream", 1, 0,
                              1e9, CommandIssuer(stub, long_one), o.calls);
  Measurement on_new =
      Drive("deposit, new stream", 1, 0, 1e9, CommandIssuer(stub, new_one), o.calls);
  Print(on_long, o.json);
  Print(on_new, o.json);
  if (!o.json) {
    std::printf("long / new p50 latency ratio: %.3f\n",
                on_new.Percentile(50) > 0 ? on_long.Percentile(50) / on_new.Percentile(50) : 0);
  }
  return 0;
}

int RunRebuild(const Options& o, v1::ProjectionAdmin::Stub& admin) {
  v1::RebuildProjectionRequest request;
  request.set_projection(o.projection);
  request.set_batch_size(o.batch_size);
  request.set_mode(o.mode == "blue-green" ? v1::BLUE_GREEN : v1::IN_PLACE);
  const RebuildOutcome outcome = TimeRebuild(admin, request);
  if (!outcome.ok) {
    std::fprintf(stderr, "rebuild failed: %s\n", outcome.error.c_str());
    return 1;
  }
  if (o.json) {
    std::printf(
        "{\"name\":\"rebuild %s\",\"events\":%llu,\"seconds\":%.3f,"
        "\"events_per_second\":%.0f}\n",
        o.projection.c_str(), static_cast<unsigned long long>(outcome.events), outcome.seconds,
        outcome.events / outcome.seconds);
  } else {
    std::printf("rebuild %s (%s): %llu events in %.3f s = %.0f events/s end to end\n",
                o.projection.c_str(), o.mode.c_str(),
                static_cast<unsigned long long>(outcome.events), outcome.seconds,
                outcome.events / outcome.seconds);
  }
  return 0;
}

// Every latency and the summed time of `parts`, as one measurement.
Measurement Pooled(const std::vector<Measurement>& parts) {
  Measurement all;
  for (const Measurement& m : parts) {
    all.ok += m.ok;
    all.seconds += m.seconds;
    all.latencies_us.insert(all.latencies_us.end(), m.latencies_us.begin(), m.latencies_us.end());
  }
  return all;
}

// Throughput and p99 of `during` as ratios to an idle throughput and p99.
std::pair<double, double> Ratios(const Measurement& during, double idle_throughput,
                                 double idle_p99) {
  return {idle_throughput > 0 ? during.throughput() / idle_throughput : 0,
          idle_p99 > 0 ? during.Percentile(99) / idle_p99 : 0};
}

int RunRebuildUnderLoad(const Options& o, v1::AccountCommands::Stub& stub,
                        v1::ProjectionAdmin::Stub& admin) {
  v1::RebuildProjectionRequest request;
  request.set_projection(o.projection);
  request.set_mode(v1::BLUE_GREEN);
  const RebuildOutcome alone = TimeRebuild(admin, request);
  if (!alone.ok) {
    std::fprintf(stderr, "rebuild failed: %s\n", alone.error.c_str());
    return 1;
  }
  std::vector<std::string> ids = OpenAccounts(stub, o.accounts, "R" + RunTag() + "N");
  PrintHeader(o.json);
  double rate = o.rate;
  if (rate <= 0) {
    Measurement max =
        Drive("commands flat out", o.concurrency, 0, o.seconds, CommandIssuer(stub, ids));
    Print(max, o.json);
    rate = max.throughput() / 2;
    // Lets the flushes and compactions of the flat-out run finish, so they do not weigh on
    // the baseline.
    std::this_thread::sleep_for(std::chrono::seconds(3));
  }
  // A first run at the offered rate, not counted: the first baseline measured straight after
  // the flat-out run (or the live projections' catch-up) carried their flushes and
  // compactions (p99 95 ms against 13-15 ms for the later ones, in one run).
  Print(Drive("commands, warm-up (not counted)", o.concurrency, rate, o.seconds,
              CommandIssuer(stub, ids)),
        o.json);
  // Baselines and rebuilds alternate: idle[0], during[0], idle[1], ..., during[K-1], idle[K].
  std::vector<Measurement> idle, during;
  std::vector<RebuildOutcome> loaded;
  auto baseline = [&](const std::string& name) {
    idle.push_back(Drive(name, o.concurrency, rate, o.seconds, CommandIssuer(stub, ids)));
    Print(idle.back(), o.json);
  };
  baseline("commands, no rebuild");
  for (int round = 0; round < o.rounds; ++round) {
    std::atomic<bool> done{false};
    RebuildOutcome outcome;
    std::thread rebuilder([&] {
      outcome = TimeRebuild(admin, request);
      done.store(true);
    });
    during.push_back(Drive("commands, during rebuild", o.concurrency, rate, 1e9,
                           CommandIssuer(stub, ids), 0, &done));
    rebuilder.join();
    Print(during.back(), o.json);
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
  const Measurement all_idle = Pooled(idle), all_during = Pooled(during);
  const auto [throughput_ratio, p99_ratio] =
      Ratios(all_during, all_idle.throughput(), all_idle.Percentile(99));
  double rebuilt = 0, rebuild_seconds = 0;
  for (const RebuildOutcome& r : loaded) {
    rebuilt += r.events;
    rebuild_seconds += r.seconds;
  }
  if (o.json) {
    std::printf(
        "{\"name\":\"rebuild under load\",\"rounds\":%d,\"rebuild_alone_events_per_second\":%.0f,"
        "\"rebuild_loaded_events_per_second\":%.0f,\"throughput_ratio\":%.3f,"
        "\"p99_ratio\":%.3f,\"idle_p99_us\":%.0f,\"during_p99_us\":%.0f}\n",
        o.rounds, alone.events / alone.seconds, rebuilt / rebuild_seconds, throughput_ratio,
        p99_ratio, all_idle.Percentile(99), all_during.Percentile(99));
    return 0;
  }
  std::printf("blue-green rebuild of %s alone: %llu events in %.2f s = %.0f events/s\n",
              o.projection.c_str(), static_cast<unsigned long long>(alone.events), alone.seconds,
              alone.events / alone.seconds);
  for (int round = 0; round < o.rounds; ++round) {
    const double idle_p99 = std::min(idle[round].Percentile(99), idle[round + 1].Percentile(99));
    const auto [t, p] = Ratios(
        during[round], std::max(idle[round].throughput(), idle[round + 1].throughput()), idle_p99);
    std::printf(
        "round %d: blue-green rebuild of %s under load: %llu events in %.2f s = %.0f events/s;"
        " during / better adjacent baseline: throughput %.3f, p99 latency %.3f (%.0f us against"
        " %.0f us)\n",
        round + 1, o.projection.c_str(), static_cast<unsigned long long>(loaded[round].events),
        loaded[round].seconds, loaded[round].events / loaded[round].seconds, t, p,
        during[round].Percentile(99), idle_p99);
  }
  std::printf("pooled over %d rebuild(s) and %d baselines: p99 %.0f us during, %.0f us idle\n",
              o.rounds, o.rounds + 1, all_during.Percentile(99), all_idle.Percentile(99));
  std::printf("during / idle: throughput %.3f, p99 latency %.3f\n", throughput_ratio, p99_ratio);
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"fidelis-bench: load generator and benchmarks for a Fidelis server"};
  app.require_subcommand(1);
  Options o;
  app.add_option("--server", o.server, "Server address")->capture_default_str();
  app.add_flag("--json", o.json, "Print JSON lines instead of a table");
  app.add_option("--trace", o.trace,
                 "Write each call's send time (Unix seconds), latency (us) and measurement here");
  CLI::App* commands = app.add_subcommand("commands", "Command throughput and latency vs Ping");
  commands->add_option("--accounts", o.accounts)->capture_default_str();
  commands->add_option("--seconds", o.seconds, "Seconds per measurement")->capture_default_str();
  commands->add_option("--concurrency", o.concurrency, "Calls in flight")->capture_default_str();
  commands->add_option("--rate", o.rate, "Offered calls per second (default: flat out, then 50%)");
  commands->add_option("--batch", o.batch, "Also measure ExecuteCommands with this many per call")
      ->check(CLI::Range(0, 1000));
  commands
      ->add_option("--batch-concurrency", o.batch_concurrency, "ExecuteCommands calls in flight")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  CLI::App* queries = app.add_subcommand("queries", "GetAccountSummary throughput vs Ping");
  queries->add_option("--accounts", o.accounts)->capture_default_str();
  queries->add_option("--seconds", o.seconds, "Seconds per measurement")->capture_default_str();
  queries->add_option("--concurrency", o.concurrency, "Calls in flight")->capture_default_str();
  queries->add_option("--rounds", o.query_rounds, "Rounds of Ping then GetAccountSummary")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  CLI::App* stream = app.add_subcommand("stream-length", "Cost of a command vs stream length");
  stream->add_option("--events", o.stream_events)->capture_default_str();
  stream->add_option("--calls", o.calls)->capture_default_str();
  CLI::App* rebuild = app.add_subcommand("rebuild", "Time a projection rebuild");
  rebuild->add_option("--projection", o.projection)->capture_default_str();
  rebuild->add_option("--batch-size", o.batch_size);
  rebuild->add_option("--mode", o.mode, "in-place or blue-green")
      ->check(CLI::IsMember({"in-place", "blue-green"}))
      ->capture_default_str();
  CLI::App* under_load = app.add_subcommand(
      "rebuild-under-load", "Command throughput and latency during a blue-green rebuild");
  under_load->add_option("--projection", o.projection)->capture_default_str();
  under_load->add_option("--accounts", o.accounts)->capture_default_str();
  under_load->add_option("--seconds", o.seconds, "Seconds of the idle measurements")
      ->capture_default_str();
  under_load->add_option("--concurrency", o.concurrency, "Calls in flight")->capture_default_str();
  under_load->add_option("--rate", o.rate, "Offered calls per second (default: 50% of max)");
  under_load->add_option("--rounds", o.rounds, "Rebuilds under load, each after a baseline")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  CLI::App* compare =
      app.add_subcommand("compare", "Commands on several servers side by side, as ratios");
  compare->add_option("--target", o.targets, "LABEL=host:port; the first is the baseline")
      ->required();
  compare->add_option("--accounts", o.accounts)->capture_default_str();
  compare->add_option("--seconds", o.seconds, "Seconds per measurement")->capture_default_str();
  compare->add_option("--concurrency", o.concurrency, "Unary calls in flight")
      ->capture_default_str();
  compare->add_option("--batch", o.batch, "Commands per ExecuteCommands call (0: none)")
      ->check(CLI::Range(0, 1000));
  compare->add_option("--batch-concurrency", o.batch_concurrency, "ExecuteCommands calls in flight")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  compare->add_option("--rounds", o.compare_rounds, "Rounds over every target")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  CLI::App* contention = app.add_subcommand(
      "contention", "Two cluster nodes writing to the same accounts vs one node alone");
  contention->add_option("--other", o.other, "The second node, host:port")->required();
  contention->add_option("--accounts", o.accounts)->capture_default_str();
  contention->add_option("--seconds", o.seconds, "Seconds per measurement")->capture_default_str();
  contention->add_option("--concurrency", o.concurrency, "Calls in flight, in all")
      ->capture_default_str();
  contention->add_option("--rounds", o.compare_rounds, "Rounds of each")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  CLI::App* fill = app.add_subcommand("fill", "Append events in batches");
  fill->add_option("--accounts", o.accounts)->capture_default_str();
  fill->add_option("--events", o.fill_events, "About this many events")->required();
  fill->add_option("--batch", o.fill_batch, "Commands per call")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (*compare) {
    std::vector<Target> targets;
    for (const std::string& text : o.targets) {
      Target target;
      if (!ParseTarget(text, &target)) {
        std::fprintf(stderr, "--target: expected LABEL=host:port, got \"%s\"\n", text.c_str());
        return 2;
      }
      targets.push_back(target);
    }
    return RunCompare(targets, o.accounts, o.seconds, o.concurrency, o.batch, o.batch_concurrency,
                      o.compare_rounds, o.json);
  }
  if (*contention) {
    return RunContention(o.server, o.other, o.accounts, o.seconds, o.concurrency, o.compare_rounds,
                         o.json);
  }
  if (*fill) return RunFill(o.server, o.accounts, o.fill_events, o.fill_batch, o.json);
  if (!o.trace.empty()) {
    trace_file = std::fopen(o.trace.c_str(), "w");
    if (trace_file == nullptr) {
      std::fprintf(stderr, "cannot write the trace file %s\n", o.trace.c_str());
      return 2;
    }
  }

  auto channel = Connect(o.server);
  v1::AccountCommands::Stub stub(channel);
  v1::AccountQueries::Stub query_stub(channel);
  v1::ProjectionAdmin::Stub admin(channel);
  if (*commands) return RunCommands(o, stub);
  if (*queries) return RunQueries(o, stub, query_stub);
  if (*stream) return RunStreamLength(o, stub);
  if (*rebuild) return RunRebuild(o, admin);
  if (*under_load) return RunRebuildUnderLoad(o, stub, admin);
  return 2;
}

}  // namespace fidelis::clients

int main(int argc, char** argv) {
  // The load generator shares the machine with the server it measures: no lock-order tracking
  // (on in Debian's Abseil build, see server/daemon.cc) for gRPC's mutexes here either.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  try {
    return fidelis::clients::Main(argc, argv);
  } catch (const std::exception& e) {  // A thread that cannot start, memory exhausted.
    std::fprintf(stderr, "fidelis-bench: %s\n", e.what());
    return 1;
  }
}
