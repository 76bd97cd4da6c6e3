// End to end: the real fidelisd binary, driven by the real fidelis CLI, killed with SIGKILL
// mid-way and restarted. Every acknowledged command's events must still be in the log.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "domain/version.h"
#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace fidelis::testing {
namespace {

const std::string kServer = FIDELISD_PATH;
const std::string kCli = FIDELIS_CLI_PATH;

// Starts fidelisd on a free loopback port; returns the address it printed.
std::string StartServer(std::unique_ptr<Child>& child, const std::string& data_dir) {
  child = std::make_unique<Child>(
      std::vector<std::string>{kServer, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
                               "--data_dir=" + data_dir, "--log_level=warn"});
  std::string line = child->ReadLine();
  const std::string prefix = "listening on ";
  if (line.rfind(prefix, 0) != 0) return "";
  return line.substr(prefix.size());
}

RunResult Cli(const std::string& address, std::vector<std::string> args) {
  args.insert(args.begin(), {kCli, "--server", address, "--timeout", "5"});
  return Run(args);
}

std::string JsonField(const std::string& json, const std::string& field) {
  std::smatch match;
  std::regex pattern("\"" + field + "\":\"?([^\",}]*)\"?");
  if (std::regex_search(json, match, pattern)) return match[1];
  return "";
}

TEST(EndToEndTest, AcknowledgedCommandsSurviveSigkill) {
  TempDir dir;
  std::unique_ptr<Child> server;
  std::string address = StartServer(server, dir.Sub("data"));
  ASSERT_FALSE(address.empty());

  RunResult opened = Cli(address, {"--json", "account", "open", "--number", "E2E1", "--holder",
                                   "Grace Hopper", "--deposit", "10.00"});
  ASSERT_EQ(opened.exit_code, 0) << opened.output;
  const std::string id = JsonField(opened.output, "account_id");
  ASSERT_EQ(id.size(), 32u) << opened.output;

  // Readable output for people.
  RunResult shown = Cli(address, {"account", "get", "--account", id, "--min-position", "1"});
  ASSERT_EQ(shown.exit_code, 0);
  EXPECT_NE(shown.output.find("balance:       10.00 EUR"), std::string::npos) << shown.output;

  // A client deposits continuously; the server is killed while it does.
  std::map<uint64_t, int64_t> acknowledged;  // global position -> stream version
  std::atomic<int> acks{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::thread client([&] {
    for (int i = 0; i < 400 && !stop.load(); ++i) {
      RunResult r = Cli(address, {"--json", "account", "deposit", "--account", id, "--amount",
                                  "0.01", "--command-id", "dep-" + std::to_string(i)});
      if (r.exit_code == 0) {
        std::lock_guard<std::mutex> lock(mu);
        acknowledged[std::stoull(JsonField(r.output, "global_position"))] =
            std::stoll(JsonField(r.output, "stream_version"));
        ++acks;
      } else {
        stop.store(true);  // The server is gone.
      }
    }
  });
  while (acks.load() < 20 && !stop.load()) absl::SleepFor(absl::Milliseconds(5));
  server->Signal(SIGKILL);
  EXPECT_EQ(server->Wait(), 128 + SIGKILL);
  stop.store(true);
  client.join();
  ASSERT_GE(acknowledged.size(), 20u);

  address = StartServer(server, dir.Sub("data"));
  ASSERT_FALSE(address.empty());
  RunResult events =
      Cli(address, {"--json", "events", "read", "--stream", "Account-" + id, "--max", "1000"});
  ASSERT_EQ(events.exit_code, 0);
  std::map<uint64_t, int64_t> logged;
  std::istringstream lines(events.output);
  for (std::string line; std::getline(lines, line);) {
    if (JsonField(line, "type") == "DepositMade") {
      logged[std::stoull(JsonField(line, "global_position"))] =
          std::stoll(JsonField(line, "stream_version"));
    }
  }
  for (const auto& [position, version] : acknowledged) {
    ASSERT_TRUE(logged.count(position)) << "acknowledged position " << position << " is lost";
    EXPECT_EQ(logged[position], version);
  }
  // Retrying an acknowledged command after the crash appends nothing new.
  RunResult retry = Cli(address, {"--json", "account", "deposit", "--account", id, "--amount",
                                  "0.01", "--command-id", "dep-0"});
  ASSERT_EQ(retry.exit_code, 0);
  EXPECT_EQ(JsonField(retry.output, "deduplicated"), "true");

  // The projection agrees with the log once it has caught up.
  const std::string head = std::to_string(logged.rbegin()->first);
  RunResult summary =
      Cli(address, {"--json", "account", "get", "--account", id, "--min-position", head});
  ASSERT_EQ(summary.exit_code, 0) << summary.output;
  EXPECT_EQ(JsonField(summary.output, "minor_units"), std::to_string(1000 + logged.size()));

  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(), 0);  // Graceful shutdown exits cleanly.
}

TEST(EndToEndTest, TransfersAreAllOrNothingAcrossSigkill) {
  TempDir dir;
  std::unique_ptr<Child> server;
  std::string address = StartServer(server, dir.Sub("data"));
  ASSERT_FALSE(address.empty());
  std::vector<std::string> ids;
  for (const char* number : {"T1", "T2", "T3"}) {
    RunResult opened = Cli(address, {"--json", "account", "open", "--number", number, "--holder",
                                     "H", "--deposit", "100.00"});
    ASSERT_EQ(opened.exit_code, 0);
    ids.push_back(JsonField(opened.output, "account_id"));
  }
  std::atomic<int> acks{0};
  std::atomic<bool> stop{false};
  std::thread client([&] {
    for (int i = 0; i < 400 && !stop.load(); ++i) {
      RunResult r = Cli(address, {"account", "transfer", "--from", ids[i % 3], "--to",
                                  ids[(i + 1) % 3], "--amount", "0.37"});
      if (r.exit_code == 0) {
        ++acks;
      } else {
        stop.store(true);
      }
    }
  });
  while (acks.load() < 15 && !stop.load()) absl::SleepFor(absl::Milliseconds(5));
  server->Signal(SIGKILL);
  server->Wait();
  stop.store(true);
  client.join();

  address = StartServer(server, dir.Sub("data"));
  ASSERT_FALSE(address.empty());
  RunResult events = Cli(address, {"--json", "events", "read", "--max", "1000"});
  ASSERT_EQ(events.exit_code, 0);
  std::map<std::string, int> debits, credits;
  std::istringstream lines(events.output);
  for (std::string line; std::getline(lines, line);) {
    const std::string type = JsonField(line, "type");
    if (type == "TransferDebited") ++debits[JsonField(line, "transfer_id")];
    if (type == "TransferCredited") ++credits[JsonField(line, "transfer_id")];
  }
  EXPECT_GE(debits.size(), static_cast<size_t>(acks.load()));
  EXPECT_EQ(debits, credits);  // Every transfer is whole: both halves or neither.
  for (const auto& [id, count] : debits) EXPECT_EQ(count, 1) << id;
  int64_t total = 0;
  const std::string head =
      std::to_string(std::count(events.output.begin(), events.output.end(), '\n'));
  for (const auto& id : ids) {
    RunResult summary =
        Cli(address, {"--json", "account", "get", "--account", id, "--min-position", head});
    ASSERT_EQ(summary.exit_code, 0) << summary.output;
    total += std::stoll(JsonField(summary.output, "minor_units"));
  }
  EXPECT_EQ(total, 30000);
}

TEST(EndToEndTest, BothBinariesPrintTheirVersionAndCommit) {
  for (const auto& [binary, name] : {std::pair{kServer, "fidelisd"}, std::pair{kCli, "fidelis"}}) {
    RunResult version = fidelis::testing::Run({binary, "--version"});
    EXPECT_EQ(version.exit_code, 0) << binary;
    EXPECT_EQ(version.output, VersionLine(name) + "\n");
    EXPECT_NE(version.output.find(std::string(" (commit ") + GitCommit() + ")"), std::string::npos);
  }
}

// A file or directory fidelisd's user may not use is PERMISSION_DENIED naming it and the uid,
// and a server that never started does not log that it shut down. As root the server runs as
// nobody (setpriv), since root reads everything; otherwise the files lose their permissions.
TEST(EndToEndTest, AnUnreadableKeyOrDataDirectoryIsPermissionDenied) {
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  const bool root = geteuid() == 0;
  std::vector<std::string> as_other;
  if (root) as_other = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  auto start = [&](const std::vector<std::string>& flags) {
    // A server that starts after all is stopped after 20 s, and the test fails.
    std::string command = "timeout 20 ";
    for (const auto& arg : as_other) command += arg + " ";
    command += kServer + " --listen=127.0.0.1:0 --http_listen=127.0.0.1:0";
    for (const auto& flag : flags) command += " " + flag;
    return fidelis::testing::Run({"sh", "-c", command + " 2>&1"});
  };
  // The data directory: root's 0700 directory, or one without write permission.
  const std::string data = dir.Sub("data");
  ASSERT_EQ(mkdir(data.c_str(), root ? 0700 : 0500), 0);
  RunResult refused = start({"--data_dir=" + data});
  if (refused.output.find("setpriv:") != std::string::npos) {
    GTEST_SKIP() << "cannot run fidelisd as another user here: " << refused.output;
  }
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("failed to start: PERMISSION_DENIED: opening database " + data),
            std::string::npos)
      << refused.output;
  EXPECT_NE(
      refused.output.find("must be writable by uid " + std::to_string(root ? 65534 : geteuid())),
      std::string::npos)
      << refused.output;
  EXPECT_EQ(refused.output.find("shutting down"), std::string::npos) << refused.output;
  EXPECT_EQ(refused.output.find("stopped"), std::string::npos) << refused.output;

  // A TLS key readable by its owner only (as openssl writes it).
  ASSERT_EQ(chmod(data.c_str(), 0777), 0);
  const std::string key = dir.Sub("key.pem"), cert = dir.Sub("cert.pem");
  std::ofstream(key) << "not read";
  std::ofstream(cert) << "not read";
  ASSERT_EQ(chmod(key.c_str(), root ? 0600 : 0000), 0);
  refused = start({"--data_dir=" + data, "--tls_key_file=" + key, "--tls_cert_file=" + cert});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("failed to start: PERMISSION_DENIED: cannot read TLS key " + key),
            std::string::npos)
      << refused.output;
  EXPECT_NE(refused.output.find("permission denied to uid"), std::string::npos) << refused.output;
  EXPECT_EQ(refused.output.find("NOT_FOUND"), std::string::npos) << refused.output;
  chmod(key.c_str(), 0600);
}

TEST(EndToEndTest, TheCliReportsRejectionsWithTheirCodeAndExitsNonZero) {
  TempDir dir;
  std::unique_ptr<Child> server;
  const std::string address = StartServer(server, dir.Sub("data"));
  ASSERT_FALSE(address.empty());
  RunResult missing = Cli(address, {"account", "deposit", "--account",
                                    "0123456789abcdef0123456789abcdef", "--amount", "1"});
  EXPECT_EQ(missing.exit_code, 1);
  RunResult list = Cli(address, {"projection", "list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.output.find("AccountSummary"), std::string::npos);
  EXPECT_NE(list.output.find("AccountReport"), std::string::npos);
  RunResult usage = Cli(
      address, {"account", "deposit", "--account", "x", "--amount", "1.234", "--currency", "EUR"});
  EXPECT_EQ(usage.exit_code, 2);
}

// An account number in the usual form (hyphens), and amounts typed without --currency: the CLI
// uses the account's own currency, so USD amounts go to a USD account and JPY ones have no
// decimals.
TEST(EndToEndTest, TheCliUsesTheAccountsCurrencyWhenNoneIsGiven) {
  TempDir dir;
  std::unique_ptr<Child> server;
  const std::string address = StartServer(server, dir.Sub("data"));
  ASSERT_FALSE(address.empty());
  RunResult usd = Cli(address, {"--json", "account", "open", "--number", "ACC-001", "--holder",
                                "Ada", "--deposit", "10.00", "--currency", "USD"});
  ASSERT_EQ(usd.exit_code, 0) << usd.output;
  RunResult yen = Cli(address, {"--json", "account", "open", "--number", "NL91-ABNA-0417",
                                "--holder", "Bo", "--currency", "JPY"});
  ASSERT_EQ(yen.exit_code, 0) << yen.output;
  const std::string usd_id = JsonField(usd.output, "account_id");
  const std::string yen_id = JsonField(yen.output, "account_id");
  const std::string opened_at = JsonField(yen.output, "global_position");

  // The summary the CLI asks for the currency must show the account: wait until it does.
  ASSERT_EQ(
      Cli(address, {"account", "get", "--account", usd_id, "--min-position", opened_at}).exit_code,
      0);
  RunResult deposit =
      Cli(address, {"account", "deposit", "--account", usd_id, "--amount", "500.00"});
  EXPECT_EQ(deposit.exit_code, 0);
  EXPECT_NE(deposit.output.find("Deposited 500.00 USD to account " + usd_id), std::string::npos)
      << deposit.output;
  RunResult withdraw =
      Cli(address, {"--json", "account", "withdraw", "--account", usd_id, "--amount", "0.50"});
  EXPECT_EQ(withdraw.exit_code, 0) << withdraw.output;
  // JPY has no minor unit: "1.5" is not an amount in it, "150" is.
  EXPECT_EQ(Cli(address, {"account", "deposit", "--account", yen_id, "--amount", "1.5"}).exit_code,
            2);
  RunResult yen_deposit =
      Cli(address, {"account", "deposit", "--account", yen_id, "--amount", "150"});
  EXPECT_EQ(yen_deposit.exit_code, 0) << yen_deposit.output;
  // A transfer takes the source account's currency; these two differ, so the server refuses it.
  RunResult transfer =
      Cli(address, {"account", "transfer", "--from", usd_id, "--to", yen_id, "--amount", "1.00"});
  EXPECT_EQ(transfer.exit_code, 1);

  RunResult shown = Cli(address, {"--json", "account", "get", "--account", usd_id, "--min-position",
                                  JsonField(withdraw.output, "global_position")});
  EXPECT_EQ(JsonField(shown.output, "minor_units"), "50950") << shown.output;
  EXPECT_EQ(JsonField(shown.output, "account_number"), "ACC-001") << shown.output;

  // The log's text form shows each payload's fields, amounts in their currency.
  RunResult log = Cli(address, {"events", "read", "--stream", "Account-" + usd_id});
  EXPECT_EQ(log.exit_code, 0);
  EXPECT_NE(log.output.find("AccountOpened v2"), std::string::npos) << log.output;
  EXPECT_NE(log.output.find("account_number=ACC-001 holder_name=Ada opening_deposit=10.00 USD"),
            std::string::npos)
      << log.output;
  EXPECT_NE(log.output.find("amount=500.00 USD"), std::string::npos) << log.output;
  EXPECT_NE(log.output.find("amount=0.50 USD"), std::string::npos) << log.output;
}

TEST(EndToEndTest, TheCliRunsABatchOfCommandsFromJsonLines) {
  TempDir dir;
  std::unique_ptr<Child> server;
  const std::string address = StartServer(server, dir.Sub("data"));
  ASSERT_FALSE(address.empty());
  RunResult opened = Cli(address, {"--json", "account", "open", "--number", "B1", "--holder",
                                   "Batch Holder", "--deposit", "1.00"});
  ASSERT_EQ(opened.exit_code, 0) << opened.output;
  const std::string id = JsonField(opened.output, "account_id");
  const std::string file = dir.Sub("commands.jsonl");
  {
    std::ofstream out(file);
    auto money = [](int units) {
      return R"("amount": {"minor_units": ")" + std::to_string(units) + R"(", "currency": "EUR"})";
    };
    out << R"({"make_deposit": {"account_id": ")" << id << R"(", )" << money(500) << "}}\n";
    out << "\n";  // Blank lines are skipped.
    out << R"({"make_withdrawal": {"account_id": ")" << id << R"(", )" << money(550) << "}}\n";
    out << R"({"make_withdrawal": {"account_id": ")" << id << R"(", )" << money(100) << "}}\n";
  }
  // The second withdrawal needs more than is left after the first: the batch partly fails.
  RunResult ran = Cli(address, {"account", "batch", "--file", file});
  EXPECT_EQ(ran.exit_code, 1) << ran.output;
  EXPECT_NE(ran.output.find("[0] OK account " + id + " (stream version 2"), std::string::npos)
      << ran.output;
  EXPECT_NE(ran.output.find("[1] OK account " + id + " (stream version 3"), std::string::npos)
      << ran.output;
  EXPECT_NE(ran.output.find("[2] FAILED_PRECONDITION: commands[2].make_withdrawal: "),
            std::string::npos)
      << ran.output;
  EXPECT_NE(ran.output.find("2 of 3 commands succeeded"), std::string::npos) << ran.output;
  RunResult shown = Cli(address, {"account", "get", "--account", id, "--min-position", "3"});
  EXPECT_NE(shown.output.find("balance:       0.50 EUR"), std::string::npos) << shown.output;

  // A line that is no command is a usage error, and nothing is sent.
  {
    std::ofstream out(file);
    out << R"({"make_deposit": {"account_id": ")" << id << "\"}}\n{\"nonsense\": 1}\n";
  }
  RunResult bad = Cli(address, {"account", "batch", "--file", file});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  RunResult after = Cli(address, {"--json", "events", "read", "--stream", "Account-" + id});
  EXPECT_NE(after.output.find("\"stream_version\":\"3\""), std::string::npos) << after.output;
  EXPECT_EQ(after.output.find("\"stream_version\":\"4\""), std::string::npos) << after.output;
}

TEST(EndToEndTest, TheServerRefusesIntervalsOutOfRange) {
  const struct {
    const char* flag;
    const char* message;
  } cases[] = {
      {"--projection_tail_interval=-1ms", "--projection_tail_interval must not be negative"},
      {"--min_sync_interval=-1us", "--min_sync_interval must be between 0 and 100ms"},
      {"--min_sync_interval=1s", "--min_sync_interval must be between 0 and 100ms"},
      {"--rebuild_yield_max=-5ms", "--rebuild_yield_max must be between 0 and 1s"},
      {"--rebuild_yield_max=2s", "--rebuild_yield_max must be between 0 and 1s"},
      {"--rebuild_checkpoint_interval=-1s",
       "--rebuild_checkpoint_interval must be between 0 and 1h"},
      {"--rebuild_checkpoint_interval=2h",
       "--rebuild_checkpoint_interval must be between 0 and 1h"},
      {"--nats_publishes_in_flight=0",
       "--nats_publishes_in_flight must be between 1 and 64, got 0"},
      {"--nats_publishes_in_flight=65",
       "--nats_publishes_in_flight must be between 1 and 64, got 65"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.flag);
    TempDir dir;
    std::vector<std::string> args = {"timeout",
                                     "10",
                                     kServer,
                                     "--listen=127.0.0.1:0",
                                     "--http_listen=127.0.0.1:0",
                                     "--data_dir=" + dir.Sub("data"),
                                     c.flag};
    // The cluster's flags are read with the cluster's log (refused before NATS is dialled).
    if (std::string(c.flag).rfind("--nats_", 0) == 0) args.push_back("--event_store=nats");
    // Under `timeout`, so a server that started anyway ends the test with 124, not hanging.
    RunResult refused = testing::Run(args);
    EXPECT_EQ(refused.exit_code, 1) << refused.output;
    EXPECT_NE(refused.output.find(c.message), std::string::npos) << refused.output;
    EXPECT_EQ(refused.output.find("listening on"), std::string::npos) << refused.output;
  }
}

// Timed waits that end at a wall-clock deadline last as long as the wall clock is away from
// the kernel's: a step of the clock back by an hour makes a 200 ms wait an hour long. The server
// here runs under libfaketime, which puts its wall clock an hour ahead of the kernel's once the
// offset file says so (read on every call; the steady clock is left alone), so every deadline
// it computes from absl::Now() after that lies an hour past the kernel's clock.
TEST(EndToEndTest, AStepOfTheWallClockStallsNeitherProjectionsNorShutdown) {
  const std::string faketime = FAKETIME_LIBRARY;
  if (faketime.empty()) GTEST_SKIP() << "libfaketime is not installed (.ci/install-deps has it)";
  TempDir dir;
  const std::string offset = dir.Sub("clock-offset");
  std::ofstream(offset) << "+0\n";
  Child server({"/usr/bin/env", "LD_PRELOAD=" + faketime, "FAKETIME_TIMESTAMP_FILE=" + offset,
                "FAKETIME_NO_CACHE=1", "FAKETIME_DONT_FAKE_MONOTONIC=1", kServer,
                "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
                "--data_dir=" + dir.Sub("data"), "--log_level=warn"});
  const std::string line = server.ReadLine();
  ASSERT_EQ(line.rfind("listening on ", 0), 0u) << line;
  const std::string address = line.substr(std::string("listening on ").size());
  RunResult opened = Cli(address, {"--json", "account", "open", "--number", "NL01", "--holder",
                                   "Ada", "--deposit", "100.00", "--currency", "EUR"});
  ASSERT_EQ(opened.exit_code, 0) << opened.output;
  const std::string id = JsonField(opened.output, "account_id");
  int transactions = 1;

  std::ofstream(offset) << "+3600\n";
  // absl::Now() follows the kernel's clock through its own estimate, which takes up the new
  // offset within a few seconds: deposit until an event's timestamp shows it.
  bool ahead = false;
  for (int i = 0; i < 100 && !ahead; ++i) {
    RunResult deposit =
        Cli(address, {"--json", "account", "deposit", "--account", id, "--amount", "1"});
    ASSERT_EQ(deposit.exit_code, 0) << deposit.output;
    ++transactions;
    RunResult event = Cli(address, {"--json", "events", "read", "--from-position",
                                    JsonField(deposit.output, "global_position"), "--max", "1"});
    absl::Time stamped;
    std::string error;
    ASSERT_TRUE(
        absl::ParseTime(absl::RFC3339_full, JsonField(event.output, "timestamp"), &stamped, &error))
        << event.output << error;
    ahead = stamped > absl::Now() + absl::Minutes(30);
    if (!ahead) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(ahead) << "the server's clock never moved";

  // Live projections go on applying new events without being asked for a position.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Cli(address, {"account", "deposit", "--account", id, "--amount", "1"}).exit_code, 0);
    ++transactions;
  }
  const std::string expected = "\"transaction_count\":\"" + std::to_string(transactions) + "\"";
  std::string seen;
  for (absl::Time until = absl::Now() + absl::Seconds(10); absl::Now() < until;) {
    seen = Cli(address, {"--json", "account", "get", "--account", id}).output;
    if (seen.find(expected) != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_NE(seen.find(expected), std::string::npos) << seen;

  // Idle threads poll with short deadlines; shutdown must not wait out the hour.
  absl::SleepFor(absl::Seconds(1));
  server.Signal(SIGTERM);
  ASSERT_TRUE(server.WaitFor(15000)) << "fidelisd did not stop within 15 s of SIGTERM";
  EXPECT_EQ(server.Wait(), 0);
}

}  // namespace
}  // namespace fidelis::testing
