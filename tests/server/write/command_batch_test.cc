// The batch scheduler on a real handler and RocksDB, without gRPC: commands on one account run
// in request order, each on the state the one before left; failures stay with their command
// and name their place; every outcome is reported once, in request order.
#include "server/write/command_batch.h"

#include <memory>

#include "absl/synchronization/notification.h"
#include "domain/errors.h"
#include "gtest/gtest.h"
#include "server/system_clock.h"
#include "storage/rocksdb_event_store.h"
#include "tests/test_util.h"

namespace fidelis::server {
namespace {

class CommandBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::move(storage::Database::Open(dir_.path(), {})).value();
    store_ = std::move(storage::RocksDbEventStore::Open(db_.get())).value();
    snapshots_ = std::make_unique<storage::SnapshotStore>(db_.get());
    handler_ =
        std::make_unique<CommandHandler>(store_.get(), snapshots_.get(), &registry_, &clock_);
  }

  std::string OpenAccount(int64_t deposit) {
    auto opened = handler_->Open(
        OpenAccountCommand{"", "N" + std::to_string(++accounts_), "H", deposit, "EUR"}, {});
    EXPECT_OK(opened);
    return opened.ok() ? opened->account_id : "";
  }

  static v1::BatchCommand Deposit(const std::string& id, int64_t amount) {
    v1::BatchCommand command;
    command.mutable_make_deposit()->set_account_id(id);
    command.mutable_make_deposit()->mutable_amount()->set_minor_units(amount);
    command.mutable_make_deposit()->mutable_amount()->set_currency("EUR");
    return command;
  }

  static v1::BatchCommand Withdrawal(const std::string& id, int64_t amount) {
    v1::BatchCommand command;
    command.mutable_make_withdrawal()->set_account_id(id);
    command.mutable_make_withdrawal()->mutable_amount()->set_minor_units(amount);
    command.mutable_make_withdrawal()->mutable_amount()->set_currency("EUR");
    return command;
  }

  std::vector<BatchItem> Run(std::vector<v1::BatchCommand> commands) {
    auto request = std::make_unique<v1::ExecuteCommandsRequest>();
    for (auto& command : commands) *request->add_commands() = std::move(command);
    EXPECT_OK(ValidateBatch(*request));
    absl::Notification done;
    std::vector<BatchItem> items;
    int calls = 0;
    RunBatch(handler_.get(), std::move(request), absl::InfiniteFuture(),
             [&](std::vector<BatchItem> outcome) {
               items = std::move(outcome);
               ++calls;
               done.Notify();
             });
    done.WaitForNotification();
    EXPECT_EQ(calls, 1);
    return items;
  }

  testing::TempDir dir_;
  EventRegistry registry_ = MakeAccountEventRegistry("EUR");
  SystemClock clock_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::RocksDbEventStore> store_;
  std::unique_ptr<storage::SnapshotStore> snapshots_;
  std::unique_ptr<CommandHandler> handler_;
  int accounts_ = 0;
};

TEST_F(CommandBatchTest, CommandsOnOneAccountRunInRequestOrderOnTheStateLeftBefore) {
  const std::string a = OpenAccount(0);
  const std::string b = OpenAccount(0);
  // Each withdrawal needs the deposit just before it; the two accounts' chains interleave.
  std::vector<v1::BatchCommand> commands;
  for (int i = 0; i < 50; ++i) {
    commands.push_back(Deposit(a, 10));
    commands.push_back(Deposit(b, 7));
    commands.push_back(Withdrawal(a, 10));
    commands.push_back(Withdrawal(b, 7));
  }
  std::vector<BatchItem> items = Run(std::move(commands));
  ASSERT_EQ(items.size(), 200u);
  int64_t a_version = 1, b_version = 1;
  for (size_t i = 0; i < items.size(); ++i) {
    ASSERT_OK(items[i].status);
    const auto& result = static_cast<const v1::CommandResult&>(*items[i].response);
    // Versions climb by one per command of the same account, in request order.
    EXPECT_EQ(result.stream_version(), i % 2 == 0 ? ++a_version : ++b_version) << i;
  }
  EXPECT_EQ(handler_->Load(a)->balance, 0);
  EXPECT_EQ(handler_->Load(b)->balance, 0);
}

TEST_F(CommandBatchTest, AFailureStaysWithItsCommandAndNamesItsPlace) {
  const std::string a = OpenAccount(5);
  std::vector<v1::BatchCommand> commands = {Withdrawal(a, 10), Deposit(a, 0), Deposit(a, 3),
                                            v1::BatchCommand()};
  std::vector<BatchItem> items = Run(std::move(commands));
  ASSERT_EQ(items.size(), 4u);
  EXPECT_CODE(items[0].status, kFailedPrecondition);
  EXPECT_EQ(items[0].status.message().rfind("commands[0].make_withdrawal: ", 0), 0u)
      << items[0].status;
  EXPECT_EQ(items[0].response, nullptr);
  EXPECT_CODE(items[1].status, kInvalidArgument);
  EXPECT_EQ(FieldOf(items[1].status), "commands[1].make_deposit.amount.minor_units");
  ASSERT_OK(items[2].status);
  EXPECT_EQ(static_cast<const v1::CommandResult&>(*items[2].response).stream_version(), 2);
  EXPECT_EQ(FieldOf(items[3].status), "commands[3].command");
  EXPECT_EQ(handler_->Load(a)->balance, 8);
}

TEST_F(CommandBatchTest, ABatchOutsideItsSizeLimitsIsRefusedWhole) {
  v1::ExecuteCommandsRequest empty;
  EXPECT_EQ(FieldOf(ValidateBatch(empty)), "commands");
  v1::ExecuteCommandsRequest too_many;
  for (int i = 0; i <= kMaxBatchCommands; ++i) *too_many.add_commands() = Deposit("x", 1);
  EXPECT_CODE(ValidateBatch(too_many), kInvalidArgument);
  too_many.mutable_commands()->RemoveLast();
  EXPECT_OK(ValidateBatch(too_many));
}

}  // namespace
}  // namespace fidelis::server
