// The table of commands covers the whole command API: every method of AccountCommands and
// every command of a batch has exactly one row, with the method's types.
#include "server/write/command_table.h"

#include <set>

#include "fidelis/v1/accounts.pb.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "server/api/account_commands_service.h"
#include "tests/test_util.h"

namespace fidelis::server {
namespace {

TEST(CommandTableTest, EveryMethodOfTheServiceIsServedByOneRowWithItsTypes) {
  ASSERT_OK(AccountCommandsService::CheckTable());
  const auto* service =
      v1::ExecuteCommandsRequest::descriptor()->file()->FindServiceByName("AccountCommands");
  ASSERT_NE(service, nullptr);
  std::set<std::string> methods;
  for (int m = 0; m < service->method_count(); ++m) methods.insert(service->method(m)->name());
  std::set<std::string> rows;
  for (const auto& row : CommandTable()) {
    EXPECT_TRUE(rows.insert(std::string(row->method())).second) << row->method();
    const auto* method = service->FindMethodByName(std::string(row->method()));
    ASSERT_NE(method, nullptr) << row->method() << " is no method of the service";
    EXPECT_EQ(method->input_type(), row->request_type());
    EXPECT_EQ(method->output_type(), row->response_type());
    EXPECT_EQ(row->NewRequest()->GetDescriptor(), row->request_type());
    EXPECT_EQ(FindCommandRow(row->request_type()), row.get());
  }
  methods.erase("ExecuteCommands");
  methods.erase("Ping");
  EXPECT_EQ(rows, methods);
}

TEST(CommandTableTest, EveryCommandABatchCanHoldHasARowAndEveryResultAPlace) {
  const auto* command = v1::BatchCommand::descriptor()->FindOneofByName("command");
  ASSERT_NE(command, nullptr);
  const auto* result = v1::BatchOutcome::descriptor()->FindOneofByName("result");
  ASSERT_NE(result, nullptr);
  for (int f = 0; f < command->field_count(); ++f) {
    const CommandRow* row = FindCommandRow(command->field(f)->message_type());
    ASSERT_NE(row, nullptr) << command->field(f)->name();
    bool placed = false;
    for (int r = 0; r < result->field_count(); ++r) {
      placed = placed || result->field(r)->message_type() == row->response_type();
    }
    EXPECT_TRUE(placed) << row->method() << " answers " << row->response_type()->full_name()
                        << ", which BatchOutcome.result cannot hold";
  }
  EXPECT_EQ(static_cast<size_t>(command->field_count()), CommandTable().size());
}

TEST(CommandTableTest, RowsNameTheAccountsTheirRequestsNameForBatchOrdering) {
  v1::MakeDepositRequest deposit;
  deposit.set_account_id("a");
  EXPECT_EQ(FindCommandRow(deposit.GetDescriptor())->Accounts(deposit),
            CommandRow::AccountIds{"a"});
  v1::TransferFundsRequest transfer;
  transfer.set_from_account_id("a");
  transfer.set_to_account_id("b");
  EXPECT_EQ(FindCommandRow(transfer.GetDescriptor())->Accounts(transfer),
            (CommandRow::AccountIds{"a", "b"}));
  v1::OpenAccountRequest open;
  EXPECT_TRUE(FindCommandRow(open.GetDescriptor())->Accounts(open).empty());
}

}  // namespace
}  // namespace fidelis::server
