// The cluster, end to end: real nats-server processes (three, JetStream R3) and real fidelisd
// nodes (two, and a third that joins late), driven over gRPC. Races and transfers split
// across the nodes, retries sent to the other node, NATS servers and nodes killed with
// SIGKILL under load, a NATS server stopped with SIGSTOP, all of NATS stopped (and a node
// restarted meanwhile) and started again. After each: every acknowledged command is in the log
// exactly once, positions are gapless, and every node serves the same rows.
//
// CI runs a few fault rounds; FIDELIS_CLUSTER_ROUNDS=20 (tests/e2e/cluster_fault_loop.sh) runs
// the long version.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fidelis/v1/accounts.grpc.pb.h"
#include "fidelis/v1/event_log.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/nats_cluster.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace fidelis::testing {
namespace {

const std::string kServer = FIDELISD_PATH;

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 10) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

// One fidelisd node of the cluster, on a port of its own that survives restarts.
class Node {
 public:
  Node(const NatsCluster& nats, std::string data_dir)
      : nats_urls_(nats.urls()), data_dir_(std::move(data_dir)), port_(FreePort()) {}

  void Start() {
    process_ = std::make_unique<Child>(std::vector<std::string>{
        kServer, absl::StrCat("--listen=127.0.0.1:", port_), "--http_listen=127.0.0.1:0",
        "--data_dir=" + data_dir_, "--log_level=error", "--event_store=nats",
        "--nats_url=" + nats_urls_, "--nats_replicas=3", "--nats_publish_timeout=20s"});
    const std::string line = process_->ReadLine();
    ASSERT_EQ(line.rfind("listening on ", 0), 0u) << line;
    auto channel = grpc::CreateChannel(line.substr(13), grpc::InsecureChannelCredentials());
    commands_ = v1::AccountCommands::NewStub(channel);
    queries_ = v1::AccountQueries::NewStub(channel);
    log_ = v1::EventLog::NewStub(channel);
    health_ = grpc::health::v1::Health::NewStub(channel);
  }
  void Kill() {
    process_->Signal(SIGKILL);
    process_->Wait();
  }

  // Waits until the node reports SERVING (its replica has caught up).
  bool AwaitServing(absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      grpc::health::v1::HealthCheckResponse response;
      if (health_->Check(Ctx(2).get(), grpc::health::v1::HealthCheckRequest(), &response).ok() &&
          response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  const std::string& data_dir() const { return data_dir_; }
  v1::AccountCommands::Stub& commands() { return *commands_; }
  v1::AccountQueries::Stub& queries() { return *queries_; }

  // The whole log as this node holds it.
  std::vector<v1::RecordedEvent> Log() {
    std::vector<v1::RecordedEvent> events;
    for (uint64_t from = 1;;) {
      v1::ReadAllRequest request;
      request.set_from_position(from);
      v1::ReadAllResponse response;
      grpc::Status status = log_->ReadAll(Ctx().get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok() || response.events().empty()) break;
      for (const auto& e : response.events()) events.push_back(e);
      from = response.events().rbegin()->global_position() + 1;
    }
    return events;
  }

  // Every AccountSummary row once the node has applied `position`, serialized, by account.
  std::map<std::string, std::string> Summaries(uint64_t position) {
    std::map<std::string, std::string> rows;
    v1::ListAccountSummariesRequest request;
    request.set_page_size(1000);
    request.set_min_global_position(position);
    do {
      v1::ListAccountSummariesResponse page;
      grpc::Status status = queries_->ListAccountSummaries(Ctx(30).get(), request, &page);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      for (const auto& s : page.accounts()) rows[s.account_id()] = s.SerializeAsString();
      request.set_page_token(page.next_page_token());
    } while (!request.page_token().empty());
    return rows;
  }

 private:
  const std::string nats_urls_;
  const std::string data_dir_;
  const int port_;
  std::unique_ptr<Child> process_;
  std::unique_ptr<v1::AccountCommands::Stub> commands_;
  std::unique_ptr<v1::AccountQueries::Stub> queries_;
  std::unique_ptr<v1::EventLog::Stub> log_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      nodes_.push_back(std::make_unique<Node>(nats_, dir_.Sub(absl::StrCat("node", i))));
      nodes_.back()->Start();
    }
    for (auto& node : nodes_) ASSERT_TRUE(node->AwaitServing()) << "a node never caught up";
  }

  Node& node(size_t i) { return *nodes_[i % nodes_.size()]; }

  // Opens an account through node `i` with `deposit` minor units, retrying while the cluster
  // settles (a stream leader elected after a restart).
  std::string Open(size_t i, const std::string& number, int64_t deposit) {
    v1::OpenAccountRequest request;
    request.set_account_number(number);
    request.set_holder_name("Holder " + number);
    request.mutable_opening_deposit()->set_minor_units(deposit);
    request.mutable_opening_deposit()->set_currency("EUR");
    request.mutable_options()->set_command_id("open-" + number);
    for (int attempt = 0; attempt < 20; ++attempt) {
      v1::CommandResult result;
      grpc::Status status = node(i).commands().OpenAccount(Ctx().get(), request, &result);
      if (status.ok()) return result.account_id();
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
        ADD_FAILURE() << status.error_message();
        return "";
      }
      absl::SleepFor(absl::Milliseconds(250));
    }
    ADD_FAILURE() << "could not open " << number;
    return "";
  }

  uint64_t Head(size_t i) {
    std::vector<v1::RecordedEvent> log = node(i).Log();
    return log.empty() ? 0 : log.back().global_position();
  }

  // Every node holds the same log, gapless, with contiguous stream versions, and serves the
  // same rows once it has applied all of it.
  void ExpectConverged() {
    // A node's replica may lag another's: compare at the highest head any node holds, which
    // every node's projections reach (min_global_position) before its rows are read. A call
    // whose client gave up may still be written after that head was read: then the log has
    // moved on, and the comparison is made again at the new head.
    uint64_t head = 0;
    std::map<std::string, std::string> rows;
    for (int attempt = 0; attempt < 20; ++attempt) {
      head = 0;
      for (size_t i = 0; i < nodes_.size(); ++i) head = std::max(head, Head(i));
      ASSERT_GT(head, 0u);
      rows = node(0).Summaries(head);
      bool same = true;
      for (size_t i = 1; i < nodes_.size() && same; ++i) same = node(i).Summaries(head) == rows;
      uint64_t now = 0;
      for (size_t i = 0; i < nodes_.size(); ++i) now = std::max(now, Head(i));
      if (same || now == head) break;  // Equal, or unequal with nothing left to arrive.
      absl::SleepFor(absl::Milliseconds(250));
    }
    std::vector<v1::RecordedEvent> first = node(0).Log();
    ASSERT_GE(first.size(), head);
    std::map<std::string, int64_t> versions;
    for (size_t p = 0; p < first.size(); ++p) {
      ASSERT_EQ(first[p].global_position(), p + 1) << "a gap in the log";
      ASSERT_EQ(first[p].stream_version(), ++versions[first[p].stream_id()]);
    }
    for (size_t i = 1; i < nodes_.size(); ++i) {
      std::map<std::string, std::string> other = node(i).Summaries(head);
      EXPECT_EQ(other, rows) << "node " << i << " serves other rows";
      std::vector<v1::RecordedEvent> log = node(i).Log();
      ASSERT_GE(log.size(), head);
      for (size_t p = 0; p < head; ++p) {
        ASSERT_EQ(log[p].SerializeAsString(), first[p].SerializeAsString()) << "position " << p + 1;
      }
    }
  }

  NatsCluster nats_{3};
  TempDir dir_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

TEST_F(ClusterTest, ThirtyTwoWithdrawalsSplitAcrossNodesLetExactlyTenThrough) {
  const std::string id = Open(0, "RACE1", 100);
  ASSERT_FALSE(id.empty());
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&, t] {
      v1::MakeWithdrawalRequest request;
      request.set_account_id(id);
      request.mutable_amount()->set_minor_units(10);
      request.mutable_amount()->set_currency("EUR");
      v1::CommandResult result;
      grpc::Status status = node(t).commands().MakeWithdrawal(Ctx(30).get(), request, &result);
      if (status.ok()) {
        ++ok;
      } else if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        ++refused;
      } else {
        ++other;
        ADD_FAILURE() << status.error_message();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 10);
  EXPECT_EQ(refused.load(), 22);
  const uint64_t head = Head(0);
  for (size_t i = 0; i < 2; ++i) {
    v1::GetAccountSummaryRequest request;
    request.set_account_id(id);
    request.set_min_global_position(head);
    v1::AccountSummary summary;
    ASSERT_TRUE(node(i).queries().GetAccountSummary(Ctx().get(), request, &summary).ok());
    EXPECT_EQ(summary.balance().minor_units(), 0);
  }
  ExpectConverged();
}

TEST_F(ClusterTest, RandomTransfersOnBothNodesConserveMoneyAndRetriesGoToTheOtherNode) {
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(Open(i, absl::StrCat("T", i), 1000));
  std::atomic<int> accepted{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 16; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(c);
      for (int k = 0; k < 25; ++k) {
        v1::TransferFundsRequest request;
        const size_t from = rng() % ids.size();
        request.set_from_account_id(ids[from]);
        request.set_to_account_id(ids[(from + 1 + rng() % (ids.size() - 1)) % ids.size()]);
        request.mutable_amount()->set_minor_units(1 + rng() % 200);
        request.mutable_amount()->set_currency("EUR");
        v1::TransferFundsResponse response;
        grpc::Status status = node(c).commands().TransferFunds(Ctx(30).get(), request, &response);
        if (status.ok()) {
          ++accepted;
        } else if (status.error_code() != grpc::StatusCode::FAILED_PRECONDITION) {
          ADD_FAILURE() << status.error_message();
        }
      }
    });
  }
  for (auto& client : clients) client.join();
  EXPECT_GT(accepted.load(), 0);
  const uint64_t head = Head(1);
  int64_t total = 0;
  for (const auto& [id, row] : node(1).Summaries(head)) {
    v1::AccountSummary summary;
    ASSERT_TRUE(summary.ParseFromString(row));
    EXPECT_GE(summary.balance().minor_units(), 0);
    total += summary.balance().minor_units();
  }
  EXPECT_EQ(total, 10 * 1000);

  // A command sent to one node and retried on the other is applied once.
  v1::MakeDepositRequest deposit;
  deposit.set_account_id(ids[0]);
  deposit.mutable_amount()->set_minor_units(7);
  deposit.mutable_amount()->set_currency("EUR");
  deposit.mutable_options()->set_command_id("retry-me");
  v1::CommandResult first, again;
  ASSERT_TRUE(node(0).commands().MakeDeposit(Ctx().get(), deposit, &first).ok());
  ASSERT_TRUE(node(1).commands().MakeDeposit(Ctx().get(), deposit, &again).ok());
  EXPECT_TRUE(again.deduplicated());
  EXPECT_EQ(again.global_position(), first.global_position());
  ExpectConverged();
}

// A node decides on its replica and on the accounts it cached from its own commands; neither
// has to hold the other node's latest appends. A refusal is given only once it holds on the log
// of record: an account the other node just opened is found, and a deposit the other node just
// took counts.
TEST_F(ClusterTest, ARefusalOnOneNodeHoldsOnWhatTheOtherNodeAppended) {
  for (int i = 0; i < 20; ++i) {
    const std::string id = Open(0, absl::StrCat("R", i), 0);
    v1::MakeDepositRequest deposit;
    deposit.set_account_id(id);
    deposit.mutable_amount()->set_minor_units(10);
    deposit.mutable_amount()->set_currency("EUR");
    v1::CommandResult result;
    grpc::Status status = node(1).commands().MakeDeposit(Ctx().get(), deposit, &result);
    ASSERT_TRUE(status.ok()) << "a deposit on node 1 at once after the open on node 0: "
                             << status.error_message();  // Node 1 now caches a balance of 10.
    deposit.mutable_amount()->set_minor_units(100);
    status = node(0).commands().MakeDeposit(Ctx().get(), deposit, &result);
    ASSERT_TRUE(status.ok()) << status.error_message();
    v1::MakeWithdrawalRequest withdrawal;
    withdrawal.set_account_id(id);
    withdrawal.mutable_amount()->set_minor_units(110);
    withdrawal.mutable_amount()->set_currency("EUR");
    status = node(1).commands().MakeWithdrawal(Ctx().get(), withdrawal, &result);
    ASSERT_TRUE(status.ok()) << "node 1 withdrawing what node 0's deposit made available: "
                             << status.error_message();
    status = node(1).commands().MakeWithdrawal(Ctx().get(), withdrawal, &result);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  }
  ExpectConverged();
}

TEST_F(ClusterTest, AFreshNodeBuildsItsReplicaAndServesTheSameRows) {
  for (int i = 0; i < 40; ++i) Open(i, absl::StrCat("F", i), 100 + i);
  auto late = std::make_unique<Node>(nats_, dir_.Sub("late"));
  late->Start();
  ASSERT_TRUE(late->AwaitServing());
  nodes_.push_back(std::move(late));
  ExpectConverged();
}

// A node's replica is not synced by default (--nats_sync_replica): a machine crash can take its
// newest batches while its projections, in a RocksDB instance of their own, keep what they had
// applied of them. Made here by putting an older copy of the replica back under newer
// projections. The node re-reads the lost batches from the stream, and its projections go on
// from their checkpoint once the replica is past it, instead of asking for a rebuild.
TEST_F(ClusterTest, ANodeWhoseReplicaLostWhatItsProjectionsAppliedCatchesUpAndServes) {
  namespace fs = std::filesystem;
  for (int i = 0; i < 10; ++i) Open(i, absl::StrCat("R", i), 100 + i);
  Node& n = node(1);
  const fs::path data = n.data_dir();
  const fs::path saved = dir_.Sub("node1-replica");
  // Every entry of the data directory but the projections' instance is the replica's.
  auto copy_replica = [&](const fs::path& from, const fs::path& to) {
    for (const fs::directory_entry& entry : fs::directory_iterator(from)) {
      if (entry.path().filename() == "projections") continue;
      fs::copy(entry.path(), to / entry.path().filename(), fs::copy_options::recursive);
    }
  };
  const uint64_t older = Head(1);
  n.Kill();
  fs::create_directories(saved);
  copy_replica(data, saved);
  n.Start();
  ASSERT_TRUE(n.AwaitServing());
  for (int i = 10; i < 20; ++i) Open(i, absl::StrCat("R", i), 100 + i);
  const uint64_t head = Head(0);
  ASSERT_GT(head, older);
  ASSERT_EQ(n.Summaries(head).size(), 20u);  // Its projections have applied all of it.
  n.Kill();
  for (const fs::directory_entry& entry : fs::directory_iterator(data)) {
    if (entry.path().filename() != "projections") fs::remove_all(entry.path());
  }
  copy_replica(saved, data);
  n.Start();
  ASSERT_TRUE(n.AwaitServing());
  v1::ListAccountSummariesRequest request;
  request.set_min_global_position(head);
  grpc::Status status;
  for (int attempt = 0; attempt < 100; ++attempt) {
    v1::ListAccountSummariesResponse page;
    status = n.queries().ListAccountSummaries(Ctx().get(), request, &page);
    if (status.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectConverged();
}

// A node's start line says whether its replica is synced: not by default, and with
// --nats_sync_replica it is.
TEST_F(ClusterTest, TheReplicaIsSyncedOnlyWhenAsked) {
  for (bool sync : {false, true}) {
    std::vector<std::string> args{kServer,
                                  "--listen=127.0.0.1:0",
                                  "--http_listen=127.0.0.1:0",
                                  "--data_dir=" + dir_.Sub(absl::StrCat("sync-", sync)),
                                  "--log_level=info",
                                  "--event_store=nats",
                                  "--nats_url=" + nats_.urls(),
                                  "--nats_replicas=3"};
    if (sync) args.push_back("--nats_sync_replica");
    Child child(args);
    std::string started;
    for (std::string line = child.ReadLine(); !line.empty(); line = child.ReadLine()) {
      if (line.find(" serving on ") != std::string::npos) {
        started = line;
        break;
      }
    }
    EXPECT_NE(started.find(sync ? "WAL sync on" : "WAL sync off"), std::string::npos) << started;
  }
}

TEST_F(ClusterTest, AStoppedMinorityServerDoesNotStopWritesAndNatsDownMeansUnavailable) {
  const std::string id = Open(0, "S1", 0);
  auto deposit = [&](size_t i) {
    v1::MakeDepositRequest request;
    request.set_account_id(id);
    request.mutable_amount()->set_minor_units(1);
    request.mutable_amount()->set_currency("EUR");
    v1::CommandResult result;
    return node(i).commands().MakeDeposit(Ctx(30).get(), request, &result);
  };
  nats_.Pause(2);
  for (int i = 0; i < 6; ++i) {
    grpc::Status status = deposit(i);
    // A node connected to the stopped server notices within a few seconds and moves to
    // another; a stream leader on it is replaced. Either way the write goes through.
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  nats_.Resume(2);
  // What node 1 serves once its replica holds every deposit.
  v1::GetAccountSummaryRequest read;
  read.set_account_id(id);
  read.set_min_global_position(std::max(Head(0), Head(1)));
  v1::AccountSummary before;
  ASSERT_TRUE(node(1).queries().GetAccountSummary(Ctx(30).get(), read, &before).ok());
  read.clear_min_global_position();

  nats_.KillAll();
  grpc::Status down = deposit(0);
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  EXPECT_NE(down.error_message().find("NATS"), std::string::npos) << down.error_message();
  // Queries go on from the replica, and say how far it goes.
  v1::AccountSummary summary;
  auto context = Ctx();
  grpc::Status served = node(1).queries().GetAccountSummary(context.get(), read, &summary);
  EXPECT_TRUE(served.ok()) << served.error_message();
  EXPECT_EQ(summary.SerializeAsString(), before.SerializeAsString());
  const auto& trailers = context->GetServerTrailingMetadata();
  auto head = trailers.find("fidelis-log-head");
  ASSERT_NE(head, trailers.end());
  uint64_t replica_head = 0;
  ASSERT_TRUE(
      absl::SimpleAtoi(std::string(head->second.data(), head->second.size()), &replica_head));
  EXPECT_EQ(replica_head, Head(1));
  auto checkpoint = trailers.find("fidelis-projection-checkpoint");
  ASSERT_NE(checkpoint, trailers.end());
  // A node restarted meanwhile starts, serves from its replica, and refuses commands.
  node(1).Kill();
  node(1).Start();
  v1::AccountSummary restarted;
  for (int attempt = 0; attempt < 20; ++attempt) {
    // The first call may still go out on the connection to the killed process.
    served = node(1).queries().GetAccountSummary(Ctx().get(), read, &restarted);
    if (served.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(served.ok()) << served.error_message();
  EXPECT_EQ(restarted.SerializeAsString(), before.SerializeAsString());
  down = deposit(1);
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();

  nats_.StartAll();
  bool recovered = false;
  for (int attempt = 0; attempt < 60 && !recovered; ++attempt) {
    recovered = deposit(attempt).ok() && deposit(attempt + 1).ok();
    if (!recovered) absl::SleepFor(absl::Milliseconds(500));
  }
  EXPECT_TRUE(recovered) << "the nodes did not recover once NATS was back";
  ExpectConverged();
}

// Clients send commands with command ids through both nodes while, each round, a random NATS
// server or a random node is killed with SIGKILL and restarted. A command whose answer was
// lost is retried with its id until it is answered.
TEST_F(ClusterTest, EveryAcknowledgedCommandSurvivesKillsOfServersAndNodes) {
  const char* env = std::getenv("FIDELIS_CLUSTER_ROUNDS");
  const int rounds = env != nullptr ? std::atoi(env) : 3;
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(Open(i, absl::StrCat("K", i), 100000));
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, uint64_t> acknowledged;  // Command id -> its position.
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(100 + c);
      for (int k = 0; !stop.load(); ++k) {
        v1::MakeDepositRequest request;
        request.set_account_id(ids[rng() % ids.size()]);
        request.mutable_amount()->set_minor_units(1 + rng() % 50);
        request.mutable_amount()->set_currency("EUR");
        const std::string command_id = absl::StrCat("c", c, "-", k);
        request.mutable_options()->set_command_id(command_id);
        // Retried, on either node, until answered: the answer may be lost in a kill.
        for (int attempt = 0; attempt < 200 && !stop.load(); ++attempt) {
          v1::CommandResult result;
          grpc::Status status =
              node(c + attempt).commands().MakeDeposit(Ctx(5).get(), request, &result);
          if (status.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            acknowledged[command_id] = result.global_position();
            break;
          }
          absl::SleepFor(absl::Milliseconds(100));
        }
      }
    });
  }
  std::mt19937 rng(7);
  for (int round = 0; round < rounds; ++round) {
    absl::SleepFor(absl::Milliseconds(800));
    const int victim = rng() % 5;
    if (victim < 3) {
      nats_.Kill(victim);
      absl::SleepFor(absl::Milliseconds(300));
      nats_.Start(victim);
    } else {
      Node& n = node(victim - 3);
      n.Kill();
      absl::SleepFor(absl::Milliseconds(300));
      n.Start();
      ASSERT_TRUE(n.AwaitServing()) << "a restarted node never caught up";
    }
  }
  absl::SleepFor(absl::Seconds(1));
  stop.store(true);
  for (auto& client : clients) client.join();
  ASSERT_FALSE(acknowledged.empty());

  // Each acknowledged command is in the log once, at the position it was told.
  const uint64_t newest =
      std::max_element(acknowledged.begin(), acknowledged.end(), [](const auto& a, const auto& b) {
        return a.second < b.second;
      })->second;
  for (int i = 0; i < 2; ++i) {
    v1::GetAccountSummaryRequest wait;
    wait.set_account_id(ids[0]);
    wait.set_min_global_position(newest);
    v1::AccountSummary summary;
    ASSERT_TRUE(node(i).queries().GetAccountSummary(Ctx(30).get(), wait, &summary).ok());
  }
  std::map<std::string, std::vector<uint64_t>> seen;
  for (const v1::RecordedEvent& e : node(0).Log()) {
    if (!e.metadata().command_id().empty())
      seen[e.metadata().command_id()].push_back(e.global_position());
  }
  for (const auto& [command_id, position] : acknowledged) {
    auto it = seen.find(command_id);
    ASSERT_NE(it, seen.end()) << "acknowledged command " << command_id << " is not in the log";
    EXPECT_EQ(it->second.size(), 1u) << command_id << " was applied more than once";
    EXPECT_EQ(it->second[0], position) << command_id;
  }
  ExpectConverged();
}

}  // namespace
}  // namespace fidelis::testing
