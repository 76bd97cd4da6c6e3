// ExecuteCommands over real gRPC against a real server with RocksDB on disk: per-command
// outcomes in request order, commands on one account applied in request order, failures that
// stay with their command and name its place, idempotency shared with the single-command
// methods, and batches refused whole.
#include "server/write/command_batch.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

class ExecuteCommandsTest : public ServerTest {
 protected:
  static void AddDeposit(v1::ExecuteCommandsRequest& batch, const std::string& id, int64_t amount,
                         const std::string& command_id = "") {
    *batch.add_commands()->mutable_make_deposit() = DepositRequest(id, amount, command_id);
  }
  static void AddWithdrawal(v1::ExecuteCommandsRequest& batch, const std::string& id,
                            int64_t amount) {
    *batch.add_commands()->mutable_make_withdrawal() = WithdrawalRequest(id, amount);
  }

  grpc::Status Execute(const v1::ExecuteCommandsRequest& batch, v1::ExecuteCommandsResponse* out) {
    return commands_->ExecuteCommands(Ctx().get(), batch, out);
  }

  v1::ExecuteCommandsResponse ExecuteOk(const v1::ExecuteCommandsRequest& batch) {
    v1::ExecuteCommandsResponse out;
    grpc::Status status = Execute(batch, &out);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(out.outcomes_size(), batch.commands_size());
    return out;
  }

  static grpc::StatusCode CodeOf(const v1::BatchOutcome& outcome) {
    return static_cast<grpc::StatusCode>(outcome.status().code());
  }

  // The field named by an outcome's BadRequest detail, or "".
  static std::string FieldOf(const v1::BatchOutcome& outcome) {
    for (const auto& any : outcome.status().details()) {
      google::rpc::BadRequest bad_request;
      if (any.UnpackTo(&bad_request) && bad_request.field_violations_size() > 0) {
        return bad_request.field_violations(0).field();
      }
    }
    return "";
  }

  int64_t Balance(const std::string& id) { return Summary(id, Head()).balance().minor_units(); }
};

TEST_F(ExecuteCommandsTest, EveryKindOfCommandRunsAndIsAnsweredInRequestOrder) {
  const std::string a = OpenOk("A1", 1000);
  const std::string b = OpenOk("B1", 500);
  const std::string c = OpenOk("C1", 0);
  v1::ExecuteCommandsRequest batch;
  v1::OpenAccountRequest* open = batch.add_commands()->mutable_open_account();
  open->set_account_number("D1");
  open->set_holder_name("Holder D");
  open->mutable_opening_deposit()->set_minor_units(70);
  open->mutable_opening_deposit()->set_currency("EUR");
  AddDeposit(batch, a, 5);
  AddWithdrawal(batch, b, 200);
  v1::TransferFundsRequest* transfer = batch.add_commands()->mutable_transfer_funds();
  transfer->set_from_account_id(a);
  transfer->set_to_account_id(b);
  transfer->mutable_amount()->set_minor_units(300);
  transfer->mutable_amount()->set_currency("EUR");
  batch.add_commands()->mutable_close_account()->set_account_id(c);
  const uint64_t before = Head();

  v1::ExecuteCommandsResponse out = ExecuteOk(batch);
  for (const v1::BatchOutcome& outcome : out.outcomes()) {
    EXPECT_EQ(CodeOf(outcome), grpc::StatusCode::OK) << outcome.status().message();
  }
  EXPECT_FALSE(out.outcomes(0).command().account_id().empty());
  EXPECT_EQ(out.outcomes(1).command().account_id(), a);
  EXPECT_EQ(out.outcomes(2).command().account_id(), b);
  EXPECT_FALSE(out.outcomes(3).transfer().transfer_id().empty());
  EXPECT_EQ(out.outcomes(4).command().account_id(), c);
  EXPECT_GT(Head(), before);
  EXPECT_EQ(Balance(out.outcomes(0).command().account_id()), 70);
  EXPECT_EQ(Balance(a), 1000 + 5 - 300);
  EXPECT_EQ(Balance(b), 500 - 200 + 300);
  v1::CommandResult result;
  EXPECT_EQ(Deposit(c, 1, &result).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ExecuteCommandsTest, CommandsOnOneAccountRunInRequestOrderOnTheStateLeftBefore) {
  const std::string a = OpenOk("A1", 60);
  const std::string b = OpenOk("B1", 0);
  v1::ExecuteCommandsRequest batch;
  AddDeposit(batch, a, 100);     // 160
  AddDeposit(batch, b, 7);       // Another account, concurrently.
  AddWithdrawal(batch, a, 150);  // 10: only possible after the deposit above.
  AddWithdrawal(batch, a, 20);   // Insufficient after the withdrawal above.
  AddDeposit(batch, a, 1);       // 11
  v1::ExecuteCommandsResponse out = ExecuteOk(batch);
  EXPECT_EQ(CodeOf(out.outcomes(0)), grpc::StatusCode::OK);
  EXPECT_EQ(CodeOf(out.outcomes(1)), grpc::StatusCode::OK);
  EXPECT_EQ(CodeOf(out.outcomes(2)), grpc::StatusCode::OK) << out.outcomes(2).status().message();
  EXPECT_EQ(CodeOf(out.outcomes(3)), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(CodeOf(out.outcomes(4)), grpc::StatusCode::OK);
  // Versions follow request order: the open was version 1.
  EXPECT_EQ(out.outcomes(0).command().stream_version(), 2);
  EXPECT_EQ(out.outcomes(2).command().stream_version(), 3);
  EXPECT_EQ(out.outcomes(4).command().stream_version(), 4);
  EXPECT_LT(out.outcomes(0).command().global_position(),
            out.outcomes(2).command().global_position());
  EXPECT_LT(out.outcomes(2).command().global_position(),
            out.outcomes(4).command().global_position());
  EXPECT_EQ(Balance(a), 11);
  EXPECT_EQ(Balance(b), 7);

  // Expected versions that only hold in request order.
  v1::ExecuteCommandsRequest versioned;
  AddDeposit(versioned, a, 1);
  versioned.mutable_commands(0)->mutable_make_deposit()->mutable_options()->set_expected_version(4);
  AddDeposit(versioned, a, 1);
  versioned.mutable_commands(1)->mutable_make_deposit()->mutable_options()->set_expected_version(5);
  out = ExecuteOk(versioned);
  EXPECT_EQ(CodeOf(out.outcomes(0)), grpc::StatusCode::OK) << out.outcomes(0).status().message();
  EXPECT_EQ(CodeOf(out.outcomes(1)), grpc::StatusCode::OK) << out.outcomes(1).status().message();
  EXPECT_EQ(out.outcomes(1).command().stream_version(), 6);
}

TEST_F(ExecuteCommandsTest, ATransferOrdersCommandsOnBothOfItsAccounts) {
  const std::string a = OpenOk("A1", 100);
  const std::string b = OpenOk("B1", 60);
  v1::ExecuteCommandsRequest batch;
  AddWithdrawal(batch, a, 30);  // 70 left: the transfer below needs it to run first.
  v1::TransferFundsRequest* transfer = batch.add_commands()->mutable_transfer_funds();
  transfer->set_from_account_id(a);
  transfer->set_to_account_id(b);
  transfer->mutable_amount()->set_minor_units(70);
  transfer->mutable_amount()->set_currency("EUR");
  AddWithdrawal(batch, b, 130);  // Only possible after the transfer.
  AddWithdrawal(batch, a, 1);    // Nothing left after the transfer.
  v1::ExecuteCommandsResponse out = ExecuteOk(batch);
  EXPECT_EQ(CodeOf(out.outcomes(0)), grpc::StatusCode::OK);
  EXPECT_EQ(CodeOf(out.outcomes(1)), grpc::StatusCode::OK) << out.outcomes(1).status().message();
  EXPECT_EQ(CodeOf(out.outcomes(2)), grpc::StatusCode::OK) << out.outcomes(2).status().message();
  EXPECT_EQ(CodeOf(out.outcomes(3)), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Balance(a), 0);
  EXPECT_EQ(Balance(b), 0);
}

TEST_F(ExecuteCommandsTest, EachFailureStaysWithItsCommandAndNamesItsPlace) {
  const std::string a = OpenOk("A1", 10);
  const uint64_t before = Head();
  v1::ExecuteCommandsRequest batch;
  AddDeposit(batch, "0123456789abcdef0123456789abcdef", 5);  // No such account.
  AddDeposit(batch, a, -5);
  batch.add_commands();  // Names no command.
  AddWithdrawal(batch, a, 11);
  AddDeposit(batch, a, 5);
  v1::ExecuteCommandsResponse out = ExecuteOk(batch);
  EXPECT_EQ(CodeOf(out.outcomes(0)), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(out.outcomes(0).status().message().rfind("commands[0].make_deposit: ", 0), 0u)
      << out.outcomes(0).status().message();
  EXPECT_EQ(CodeOf(out.outcomes(1)), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(FieldOf(out.outcomes(1)), "commands[1].make_deposit.amount.minor_units")
      << out.outcomes(1).status().message();
  EXPECT_EQ(CodeOf(out.outcomes(2)), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(FieldOf(out.outcomes(2)), "commands[2].command");
  EXPECT_EQ(CodeOf(out.outcomes(3)), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(CodeOf(out.outcomes(4)), grpc::StatusCode::OK);
  EXPECT_FALSE(out.outcomes(0).has_command());
  EXPECT_EQ(Head(), before + 1);  // Only the last deposit was written.
  EXPECT_EQ(Balance(a), 15);
}

TEST_F(ExecuteCommandsTest, EmptyAndOversizedBatchesAreRefusedWholeAndWriteNothing) {
  const std::string a = OpenOk("A1", 10);
  const uint64_t before = Head();
  v1::ExecuteCommandsRequest batch;
  v1::ExecuteCommandsResponse out;
  grpc::Status status = Execute(batch, &out);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "commands");
  for (int i = 0; i <= server::kMaxBatchCommands; ++i) AddDeposit(batch, a, 1);
  status = Execute(batch, &out);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("1001"), std::string::npos) << status.error_message();
  EXPECT_EQ(Head(), before);
  batch.mutable_commands()->RemoveLast();
  out = ExecuteOk(batch);
  EXPECT_EQ(Head(), before + server::kMaxBatchCommands);
  EXPECT_EQ(Balance(a), 10 + server::kMaxBatchCommands);
  EXPECT_EQ(out.outcomes(server::kMaxBatchCommands - 1).command().stream_version(),
            1 + server::kMaxBatchCommands);
}

TEST_F(ExecuteCommandsTest, RetriesAreDeduplicatedAcrossBatchesAndSingleCalls) {
  const std::string a = OpenOk("A1", 10);
  v1::ExecuteCommandsRequest batch;
  AddDeposit(batch, a, 5, "deposit-1");
  AddDeposit(batch, a, 6, "deposit-2");
  v1::ExecuteCommandsResponse first = ExecuteOk(batch);
  const uint64_t head = Head();
  v1::ExecuteCommandsResponse again = ExecuteOk(batch);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(CodeOf(again.outcomes(i)), grpc::StatusCode::OK);
    EXPECT_TRUE(again.outcomes(i).command().deduplicated());
    EXPECT_EQ(again.outcomes(i).command().global_position(),
              first.outcomes(i).command().global_position());
  }
  v1::CommandResult single;
  ASSERT_TRUE(Deposit(a, 5, &single, "deposit-1").ok());
  EXPECT_TRUE(single.deduplicated());
  EXPECT_EQ(single.global_position(), first.outcomes(0).command().global_position());
  EXPECT_EQ(Head(), head);

  v1::ExecuteCommandsRequest reused;
  AddDeposit(reused, a, 999, "deposit-2");  // Same id, another payload.
  v1::ExecuteCommandsResponse out = ExecuteOk(reused);
  EXPECT_EQ(CodeOf(out.outcomes(0)), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(FieldOf(out.outcomes(0)), "commands[0].make_deposit.options.command_id");
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(Balance(a), 21);
}

}  // namespace
}  // namespace fidelis::testing
