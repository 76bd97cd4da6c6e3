// Crash consistency under load: the real fidelisd, several clients issuing commands, and a
// SIGKILL at a random moment, again and again. After every restart the log and the
// projections are checked against everything the clients saw acknowledged.
//
// CI runs a few kills; FIDELIS_CRASH_KILLS=20 (tests/e2e/crash_loop.sh) runs the long version.
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "fidelis/v1/accounts.grpc.pb.h"
#include "fidelis/v1/admin.grpc.pb.h"
#include "fidelis/v1/event_log.grpc.pb.h"
#include "fidelis/v1/events.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace fidelis::testing {
namespace {

const std::string kServer = FIDELISD_PATH;

class CrashTest : public ::testing::Test {
 protected:
  void Start() {
    server_ = std::make_unique<Child>(
        std::vector<std::string>{kServer, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
                                 "--data_dir=" + dir_.Sub("data"), "--log_level=error"});
    const std::string line = server_->ReadLine();
    ASSERT_EQ(line.rfind("listening on ", 0), 0u) << line;
    auto channel = grpc::CreateChannel(line.substr(13), grpc::InsecureChannelCredentials());
    commands_ = v1::AccountCommands::NewStub(channel);
    queries_ = v1::AccountQueries::NewStub(channel);
    log_ = v1::EventLog::NewStub(channel);
    admin_ = v1::ProjectionAdmin::NewStub(channel);
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 10) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return context;
  }

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

  // A random deposit, withdrawal or transfer with a command id (so that retries are safe), and
  // how many events it appends.
  v1::BatchCommand RandomCommand(std::mt19937& rng, const std::string& command_id, int* events) {
    const size_t from = rng() % accounts_.size();
    const std::string& a = accounts_[from];
    const int dice = rng() % 10;
    v1::BatchCommand command;
    *events = 1;
    if (dice < 5) {
      v1::MakeDepositRequest* r = command.mutable_make_deposit();
      r->set_account_id(a);
      r->mutable_amount()->set_minor_units(1 + rng() % 500);
      r->mutable_amount()->set_currency("EUR");
      r->mutable_options()->set_command_id(command_id);
    } else if (dice < 8) {
      v1::MakeWithdrawalRequest* r = command.mutable_make_withdrawal();
      r->set_account_id(a);
      r->mutable_amount()->set_minor_units(1 + rng() % 700);
      r->mutable_amount()->set_currency("EUR");
      r->mutable_options()->set_command_id(command_id);
    } else {
      v1::TransferFundsRequest* r = command.mutable_transfer_funds();
      r->set_from_account_id(a);
      r->set_to_account_id(
          accounts_[(from + 1 + rng() % (accounts_.size() - 1)) % accounts_.size()]);
      r->mutable_amount()->set_minor_units(1 + rng() % 300);
      r->mutable_amount()->set_currency("EUR");
      r->mutable_options()->set_command_id(command_id);
      *events = 2;
    }
    return command;
  }

  // One client's command, sent on its own.
  grpc::Status Issue(std::mt19937& rng, const std::string& command_id, int* events) {
    const v1::BatchCommand command = RandomCommand(rng, command_id, events);
    v1::CommandResult result;
    if (command.has_make_deposit()) {
      return commands_->MakeDeposit(Ctx(2).get(), command.make_deposit(), &result);
    }
    if (command.has_make_withdrawal()) {
      return commands_->MakeWithdrawal(Ctx(2).get(), command.make_withdrawal(), &result);
    }
    v1::TransferFundsResponse response;
    return commands_->TransferFunds(Ctx(2).get(), command.transfer_funds(), &response);
  }

  // Checks the log's invariants; returns each account's balance as the sum of its events and,
  // in *per_command, how many events each command id wrote.
  std::map<std::string, int64_t> CheckLog(std::map<std::string, int>* per_command) {
    std::vector<v1::RecordedEvent> log = Log();
    std::map<std::string, int64_t> versions, balances;
    for (size_t i = 0; i < log.size(); ++i) {
      const v1::RecordedEvent& e = log[i];
      EXPECT_EQ(e.global_position(), i + 1) << "gap in global positions";
      EXPECT_EQ(e.stream_version(), ++versions[e.stream_id()]) << e.stream_id();
      if (!e.metadata().command_id().empty()) ++(*per_command)[e.metadata().command_id()];
      const std::string account = e.stream_id().substr(8);
      int64_t delta = 0;
      if (e.type() == "AccountOpened") {
        v1::AccountOpened p;
        EXPECT_TRUE(e.payload().UnpackTo(&p));
        delta = p.opening_deposit().minor_units();
      } else if (e.type() == "DepositMade") {
        v1::DepositMade p;
        EXPECT_TRUE(e.payload().UnpackTo(&p));
        delta = p.amount().minor_units();
      } else if (e.type() == "WithdrawalMade") {
        v1::WithdrawalMade p;
        EXPECT_TRUE(e.payload().UnpackTo(&p));
        delta = -p.amount().minor_units();
      } else if (e.type() == "TransferDebited") {
        v1::TransferDebited p;
        EXPECT_TRUE(e.payload().UnpackTo(&p));
        delta = -p.amount().minor_units();
      } else if (e.type() == "TransferCredited") {
        v1::TransferCredited p;
        EXPECT_TRUE(e.payload().UnpackTo(&p));
        delta = p.amount().minor_units();
      } else {
        continue;
      }
      balances[account] += delta;
      EXPECT_GE(balances[account], 0) << "negative balance at position " << e.global_position();
    }
    head_ = log.size();
    return balances;
  }

  std::map<std::string, std::string> Summaries() {
    std::map<std::string, std::string> rows;
    v1::ListAccountSummariesRequest request;
    request.set_min_global_position(head_);
    v1::ListAccountSummariesResponse response;
    EXPECT_TRUE(queries_->ListAccountSummaries(Ctx(30).get(), request, &response).ok());
    for (const auto& s : response.accounts()) rows[s.account_id()] = s.SerializeAsString();
    return rows;
  }

  uint64_t head_ = 0;

  TempDir dir_;
  std::unique_ptr<Child> server_;
  std::unique_ptr<v1::AccountCommands::Stub> commands_;
  std::unique_ptr<v1::AccountQueries::Stub> queries_;
  std::unique_ptr<v1::EventLog::Stub> log_;
  std::unique_ptr<v1::ProjectionAdmin::Stub> admin_;
  std::vector<std::string> accounts_;
};

TEST_F(CrashTest, EveryAcknowledgedCommandSurvivesRepeatedSigkills) {
  const char* kills_env = std::getenv("FIDELIS_CRASH_KILLS");
  const int kills = kills_env != nullptr ? std::atoi(kills_env) : 3;
  Start();
  for (int i = 0; i < 8; ++i) {
    v1::OpenAccountRequest r;
    r.set_account_number("CR" + std::to_string(i));
    r.set_holder_name("Crash " + std::to_string(i));
    r.mutable_opening_deposit()->set_minor_units(100000);
    r.mutable_opening_deposit()->set_currency("EUR");
    v1::CommandResult result;
    ASSERT_TRUE(commands_->OpenAccount(Ctx().get(), r, &result).ok());
    accounts_.push_back(result.account_id());
  }
  std::mutex mu;
  std::map<std::string, int> acked;  // acknowledged command id -> events it appends
  std::set<std::string> unknown;     // failed calls whose outcome is unknown
  std::mt19937 chaos(12345);
  size_t acked_before = 0;
  size_t acked_in_batches = 0;
  for (int round = 0; round < kills; ++round) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    auto outcome_unknown = [](const grpc::Status& status) {
      return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
             status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
             status.error_code() == grpc::StatusCode::CANCELLED ||
             status.error_code() == grpc::StatusCode::UNKNOWN;
    };
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&, c] {
        std::mt19937 rng(round * 100 + c);
        for (int n = 0; !stop.load(); ++n) {
          const std::string id =
              "r" + std::to_string(round) + "c" + std::to_string(c) + "n" + std::to_string(n);
          int events = 0;
          grpc::Status status = Issue(rng, id, &events);
          std::lock_guard<std::mutex> lock(mu);
          if (status.ok()) {
            acked[id] = events;
          } else if (outcome_unknown(status)) {
            unknown.insert(id);
          }
        }
      });
    }
    // And one client sending batches of 8: each command acknowledged by an OK outcome.
    clients.emplace_back([&] {
      std::mt19937 rng(round * 100 + 99);
      for (int n = 0; !stop.load(); ++n) {
        v1::ExecuteCommandsRequest batch;
        std::vector<std::pair<std::string, int>> sent;
        for (int k = 0; k < 8; ++k) {
          const std::string id =
              "r" + std::to_string(round) + "b" + std::to_string(n) + "k" + std::to_string(k);
          int events = 0;
          *batch.add_commands() = RandomCommand(rng, id, &events);
          sent.emplace_back(id, events);
        }
        v1::ExecuteCommandsResponse response;
        grpc::Status status = commands_->ExecuteCommands(Ctx(2).get(), batch, &response);
        std::lock_guard<std::mutex> lock(mu);
        for (size_t k = 0; k < sent.size(); ++k) {
          if (status.ok() && response.outcomes(k).status().code() == 0) {
            acked[sent[k].first] = sent[k].second;
            ++acked_in_batches;
          } else if (!status.ok() && outcome_unknown(status)) {
            unknown.insert(sent[k].first);
          }
        }
      }
    });
    absl::SleepFor(absl::Milliseconds(150 + chaos() % 350));
    server_->Signal(SIGKILL);
    server_->Wait();
    stop.store(true);
    for (auto& t : clients) t.join();
    {
      std::lock_guard<std::mutex> lock(mu);
      ASSERT_GT(acked.size(), acked_before) << "no command was acknowledged before the kill";
      ASSERT_GT(acked_in_batches, 0u) << "no batch was acknowledged";
      acked_before = acked.size();
    }
    Start();

    std::map<std::string, int> per_command;
    CheckLog(&per_command);
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& [id, events] : acked) {
        ASSERT_EQ(per_command[id], events) << "acknowledged command " << id << " is lost";
      }
      for (const auto& [id, n] : per_command) {
        ASSERT_TRUE(n == 1 || n == 2) << id << " appears " << n << " times";
      }
      // Retry every command whose outcome the client never learned, with the same id: an
      // applied one is not applied again; one that never landed applies now, once.
      for (const std::string& id : unknown) {
        const bool applied = per_command.count(id) > 0;
        v1::MakeDepositRequest retry;
        retry.set_account_id(accounts_[0]);
        retry.mutable_amount()->set_minor_units(1);
        retry.mutable_amount()->set_currency("EUR");
        retry.mutable_options()->set_command_id(id);
        v1::CommandResult result;
        grpc::Status status = commands_->MakeDeposit(Ctx().get(), retry, &result);
        if (applied) {
          EXPECT_TRUE(status.ok() ? result.deduplicated()
                                  : status.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
              << id;
        } else {
          ASSERT_TRUE(status.ok()) << status.error_message();
          acked[id] = 1;
        }
      }
      unknown.clear();
    }
    per_command.clear();
    const std::map<std::string, int64_t> balances = CheckLog(&per_command);
    for (const auto& [id, n] : per_command) ASSERT_LE(n, 2) << id << " applied twice";
    // Once caught up, the projection's balances are the sums of the events...
    const std::map<std::string, std::string> live = Summaries();
    ASSERT_EQ(live.size(), accounts_.size());
    for (const auto& [id, row] : live) {
      v1::AccountSummary summary;
      ASSERT_TRUE(summary.ParseFromString(row));
      EXPECT_EQ(summary.balance().minor_units(), balances.at(id)) << id;
    }
    // ...and equal a fresh rebuild of the same log.
    auto context = Ctx(60);
    auto reader = admin_->RebuildProjection(context.get(), v1::RebuildProjectionRequest());
    v1::RebuildProgress progress;
    while (reader->Read(&progress)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(Summaries(), live) << "after kill " << round + 1;
  }
  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(), 0);
}

}  // namespace
}  // namespace fidelis::testing
