// The bad-input table: hostile or malformed requests across every RPC, each with the status
// it must get, and a check that the log is unchanged after each rejection.
#include <climits>
#include <functional>

#include "absl/synchronization/notification.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

class BadInputTest : public ServerTest {
 protected:
  void SetUp() override {
    StartServer();
    rich_ = OpenOk("RICH1", 5000);
    v1::CommandResult result;
    ASSERT_TRUE(ServerTest::Open("USD1", 100, &result, "USD").ok());
  }

  v1::OpenAccountRequest Open(const std::string& number, const std::string& holder, int64_t deposit,
                              const std::string& currency) {
    v1::OpenAccountRequest r;
    r.set_account_number(number);
    r.set_holder_name(holder);
    r.mutable_opening_deposit()->set_minor_units(deposit);
    r.mutable_opening_deposit()->set_currency(currency);
    return r;
  }
  grpc::Status OpenCall(const v1::OpenAccountRequest& r) {
    v1::CommandResult result;
    return commands_->OpenAccount(Ctx().get(), r, &result);
  }
  v1::MakeDepositRequest Deposit(const std::string& id, int64_t amount,
                                 const std::string& currency = "EUR") {
    v1::MakeDepositRequest r;
    r.set_account_id(id);
    r.mutable_amount()->set_minor_units(amount);
    r.mutable_amount()->set_currency(currency);
    return r;
  }
  grpc::Status DepositCall(const v1::MakeDepositRequest& r) {
    v1::CommandResult result;
    return commands_->MakeDeposit(Ctx().get(), r, &result);
  }
  grpc::Status WithdrawCall(const std::string& id, int64_t amount) {
    v1::MakeWithdrawalRequest r;
    r.set_account_id(id);
    r.mutable_amount()->set_minor_units(amount);
    r.mutable_amount()->set_currency("EUR");
    v1::CommandResult result;
    return commands_->MakeWithdrawal(Ctx().get(), r, &result);
  }
  grpc::Status CloseCall(const std::string& id, const std::string& reason) {
    v1::CloseAccountRequest r;
    r.set_account_id(id);
    r.set_reason(reason);
    v1::CommandResult result;
    return commands_->CloseAccount(Ctx().get(), r, &result);
  }
  grpc::Status TransferCall(const std::string& from, const std::string& to, int64_t amount,
                            int64_t from_expected = -2) {
    v1::TransferFundsRequest r;
    r.set_from_account_id(from);
    r.set_to_account_id(to);
    r.mutable_amount()->set_minor_units(amount);
    r.mutable_amount()->set_currency("EUR");
    if (from_expected != -2) r.set_from_expected_version(from_expected);
    v1::TransferFundsResponse response;
    return commands_->TransferFunds(Ctx().get(), r, &response);
  }
  grpc::Status SummaryCall(const std::string& id, uint64_t min_position, uint32_t version = 0) {
    v1::GetAccountSummaryRequest r;
    r.set_account_id(id);
    r.set_min_global_position(min_position);
    r.set_projection_version(version);
    v1::AccountSummary summary;
    return queries_->GetAccountSummary(Ctx().get(), r, &summary);
  }
  grpc::Status ListCall(int page_size, const std::string& token) {
    v1::ListAccountSummariesRequest r;
    r.set_page_size(page_size);
    r.set_page_token(token);
    v1::ListAccountSummariesResponse response;
    return queries_->ListAccountSummaries(Ctx().get(), r, &response);
  }
  grpc::Status ReadStreamCall(const std::string& stream, int64_t from, int32_t max) {
    v1::ReadStreamRequest r;
    r.set_stream_id(stream);
    r.set_from_version(from);
    r.set_max_count(max);
    v1::ReadStreamResponse response;
    return log_->ReadStream(Ctx().get(), r, &response);
  }
  grpc::Status RebuildCall(const std::string& projection, int32_t batch_size, int policy = 0) {
    v1::RebuildProjectionRequest r;
    r.set_projection(projection);
    r.set_batch_size(batch_size);
    r.set_unknown_event_policy(static_cast<v1::EventPolicy>(policy));
    auto context = Ctx();
    auto reader = admin_->RebuildProjection(context.get(), r);
    v1::RebuildProgress progress;
    while (reader->Read(&progress)) {
    }
    return reader->Finish();
  }

  std::string rich_;
};

struct Case {
  const char* name;
  grpc::StatusCode expected;
  std::function<grpc::Status()> call;
};

TEST_F(BadInputTest, EveryHostileRequestGetsItsStatusAndWritesNothing) {
  const std::string ghost = "0123456789abcdef0123456789abcdef";
  const std::string big(5000, 'x');
  const std::string huge(2 << 20, 'x');  // Over the 1 MiB request limit.
  const std::string bad_utf8 = "caf\xc3\x28";
  using C = grpc::StatusCode;
  std::string tampered;
  {
    v1::ListAccountSummariesRequest r;
    r.set_page_size(1);
    r.set_min_global_position(Head());
    v1::ListAccountSummariesResponse response;
    ASSERT_TRUE(queries_->ListAccountSummaries(Ctx().get(), r, &response).ok());
    tampered = response.next_page_token();
    tampered[2] = tampered[2] == 'Q' ? 'R' : 'Q';
  }
  auto with_options = [&](const std::function<void(v1::CommandOptions*)>& set) {
    v1::MakeDepositRequest r = Deposit(rich_, 1);
    set(r.mutable_options());
    return DepositCall(r);
  };
  const std::vector<Case> cases = {
      {"open: empty account_number", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("", "H", 0, "EUR")); }},
      {"open: account_number of 35 characters", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open(std::string(35, '1'), "H", 0, "EUR")); }},
      {"open: account_number with punctuation", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("NL-01'; DROP", "H", 0, "EUR")); }},
      {"open: account_number taken", C::ALREADY_EXISTS,
       [&] { return OpenCall(Open("RICH1", "H", 0, "EUR")); }},
      {"open: empty holder_name", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("N1", "", 0, "EUR")); }},
      {"open: oversized holder_name", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("N1", big, 0, "EUR")); }},
      {"open: holder_name with control characters", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("N1", "a\nb", 0, "EUR")); }},
      {"open: holder_name with NUL", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("N1", std::string("a\0b", 3), 0, "EUR")); }},
      {"open: negative opening deposit", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("N1", "H", -1, "EUR")); }},
      {"open: INT64_MIN opening deposit", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("N1", "H", INT64_MIN, "EUR")); }},
      {"open: unknown currency", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("N1", "H", 0, "XXX")); }},
      {"open: lower-case currency", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("N1", "H", 0, "eur")); }},
      {"open: empty currency", C::INVALID_ARGUMENT,
       [&] { return OpenCall(Open("N1", "H", 0, "")); }},
      {"open: expected_version 5 for a new account", C::ABORTED,
       [&] {
         v1::OpenAccountRequest r = Open("N1", "H", 0, "EUR");
         r.mutable_options()->set_expected_version(5);
         return OpenCall(r);
       }},
      {"deposit: zero amount", C::INVALID_ARGUMENT, [&] { return DepositCall(Deposit(rich_, 0)); }},
      {"deposit: negative amount", C::INVALID_ARGUMENT,
       [&] { return DepositCall(Deposit(rich_, -100)); }},
      {"deposit: INT64_MIN amount", C::INVALID_ARGUMENT,
       [&] { return DepositCall(Deposit(rich_, INT64_MIN)); }},
      {"deposit: overflowing the balance", C::FAILED_PRECONDITION,
       [&] { return DepositCall(Deposit(rich_, INT64_MAX)); }},
      {"deposit: unknown currency", C::INVALID_ARGUMENT,
       [&] { return DepositCall(Deposit(rich_, 1, "ABC")); }},
      {"deposit: another currency than the account's", C::FAILED_PRECONDITION,
       [&] { return DepositCall(Deposit(rich_, 1, "USD")); }},
      {"deposit: malformed account_id", C::INVALID_ARGUMENT,
       [&] { return DepositCall(Deposit("../../etc/passwd", 1)); }},
      {"deposit: upper-case account_id", C::INVALID_ARGUMENT,
       [&] { return DepositCall(Deposit("0123456789ABCDEF0123456789ABCDEF", 1)); }},
      {"deposit: 33-character account_id", C::INVALID_ARGUMENT,
       [&] { return DepositCall(Deposit(ghost + "0", 1)); }},
      {"deposit: unknown account", C::NOT_FOUND, [&] { return DepositCall(Deposit(ghost, 1)); }},
      {"deposit: oversized reference", C::INVALID_ARGUMENT,
       [&] {
         v1::MakeDepositRequest r = Deposit(rich_, 1);
         r.set_reference(big);
         return DepositCall(r);
       }},
      {"deposit: expected_version beyond the head", C::ABORTED,
       [&] { return with_options([](auto* o) { o->set_expected_version(999); }); }},
      {"deposit: negative expected_version", C::INVALID_ARGUMENT,
       [&] { return with_options([](auto* o) { o->set_expected_version(-7); }); }},
      {"deposit: oversized command_id", C::INVALID_ARGUMENT,
       [&] { return with_options([&](auto* o) { o->set_command_id(big); }); }},
      {"deposit: command_id with control characters", C::INVALID_ARGUMENT,
       [&] { return with_options([&](auto* o) { o->set_command_id("id\x01"); }); }},
      {"deposit: oversized correlation_id", C::INVALID_ARGUMENT,
       [&] { return with_options([&](auto* o) { o->set_correlation_id(big); }); }},
      {"withdraw: beyond the balance", C::FAILED_PRECONDITION,
       [&] { return WithdrawCall(rich_, 5001); }},
      {"withdraw: INT64_MAX", C::FAILED_PRECONDITION,
       [&] { return WithdrawCall(rich_, INT64_MAX); }},
      {"withdraw: zero", C::INVALID_ARGUMENT, [&] { return WithdrawCall(rich_, 0); }},
      {"close: non-zero balance", C::FAILED_PRECONDITION, [&] { return CloseCall(rich_, ""); }},
      {"close: oversized reason", C::INVALID_ARGUMENT, [&] { return CloseCall(rich_, big); }},
      {"close: unknown account", C::NOT_FOUND, [&] { return CloseCall(ghost, ""); }},
      {"transfer: to itself", C::INVALID_ARGUMENT, [&] { return TransferCall(rich_, rich_, 1); }},
      {"transfer: malformed from", C::INVALID_ARGUMENT,
       [&] { return TransferCall("x", rich_, 1); }},
      {"transfer: unknown destination", C::NOT_FOUND,
       [&] { return TransferCall(rich_, ghost, 1); }},
      {"transfer: negative from_expected_version", C::INVALID_ARGUMENT,
       [&] { return TransferCall(rich_, ghost, 1, -3); }},
      {"summary: malformed account_id", C::INVALID_ARGUMENT,
       [&] { return SummaryCall("nope", 0); }},
      {"summary: min_global_position beyond the head", C::INVALID_ARGUMENT,
       [&] { return SummaryCall(rich_, 1'000'000); }},
      {"summary: a projection version that is not served", C::INVALID_ARGUMENT,
       [&] { return SummaryCall(rich_, 0, 7); }},
      {"list: tampered page_token", C::INVALID_ARGUMENT, [&] { return ListCall(10, tampered); }},
      {"list: garbage page_token", C::INVALID_ARGUMENT, [&] { return ListCall(10, "!!@@##"); }},
      {"list: negative page_size", C::INVALID_ARGUMENT, [&] { return ListCall(-1, ""); }},
      {"list: page_size over the limit", C::INVALID_ARGUMENT, [&] { return ListCall(1001, ""); }},
      {"read stream: empty stream_id", C::INVALID_ARGUMENT,
       [&] { return ReadStreamCall("", 1, 10); }},
      {"read stream: negative from_version", C::INVALID_ARGUMENT,
       [&] { return ReadStreamCall("Account-" + rich_, -1, 10); }},
      {"read stream: absurd max_count", C::INVALID_ARGUMENT,
       [&] { return ReadStreamCall("Account-" + rich_, 1, 1'000'000); }},
      {"read stream: unknown stream", C::NOT_FOUND,
       [&] { return ReadStreamCall("Account-" + ghost, 1, 10); }},
      {"rebuild: unknown projection", C::NOT_FOUND, [&] { return RebuildCall("Nope", 0); }},
      {"rebuild: negative batch_size", C::INVALID_ARGUMENT,
       [&] { return RebuildCall("AccountSummary", -1); }},
      {"rebuild: absurd batch_size", C::INVALID_ARGUMENT,
       [&] { return RebuildCall("AccountSummary", 1'000'000'000); }},
      {"rebuild: undefined policy", C::INVALID_ARGUMENT,
       [&] { return RebuildCall("AccountSummary", 0, 9); }},
      {"cancel: unknown rebuild", C::NOT_FOUND,
       [&] {
         v1::CancelRebuildRequest r;
         r.set_rebuild_id(big);
         v1::RebuildInfo info;
         return admin_->CancelRebuild(Ctx().get(), r, &info);
       }},
      {"batch: no commands", C::INVALID_ARGUMENT,
       [&] {
         v1::ExecuteCommandsResponse out;
         return commands_->ExecuteCommands(Ctx().get(), v1::ExecuteCommandsRequest(), &out);
       }},
      {"batch: 1001 commands", C::INVALID_ARGUMENT,
       [&] {
         v1::ExecuteCommandsRequest r;
         for (int i = 0; i < 1001; ++i)
           *r.add_commands()->mutable_make_deposit() = Deposit(rich_, 1);
         v1::ExecuteCommandsResponse out;
         return commands_->ExecuteCommands(Ctx().get(), r, &out);
       }},
      {"open: request over the maximum message size", C::RESOURCE_EXHAUSTED,
       [&] { return OpenCall(Open("N1", huge, 0, "EUR")); }},
  };
  ASSERT_GE(cases.size(), 40u);
  for (const Case& c : cases) {
    const uint64_t head = Head();
    grpc::Status status = c.call();
    EXPECT_EQ(status.error_code(), c.expected) << c.name << ": " << status.error_message();
    EXPECT_FALSE(status.error_message().empty()) << c.name;
    if (c.expected == C::INVALID_ARGUMENT && c.name != std::string("list: tampered page_token") &&
        std::string(c.name).rfind("summary: min", 0) != 0) {
      EXPECT_FALSE(ViolatedField(status).empty()) << c.name << " names no field";
    }
    EXPECT_EQ(Head(), head) << c.name << " wrote to the log";
  }
}

TEST_F(BadInputTest, NonUtf8TextIsRejected) {
  // proto3 string fields must be UTF-8. Commands parse their request bytes themselves, so the
  // answer names the field, nested ones included, and nothing is stored.
  const uint64_t head = Head();
  grpc::Status status = OpenCall(Open("N1", "caf\xc3\x28", 0, "EUR"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(ViolatedField(status), "holder_name");
  status = OpenCall(Open("N1", "Ann", 0, "E\xffR"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(ViolatedField(status), "opening_deposit.currency");
  // In a batch, the whole call is refused (it does not parse), naming the command.
  v1::ExecuteCommandsRequest batch;
  *batch.add_commands()->mutable_make_deposit() = Deposit(rich_, 1);
  v1::MakeDepositRequest bad = Deposit(rich_, 1);
  bad.set_reference("caf\xc3\x28");
  *batch.add_commands()->mutable_make_deposit() = bad;
  v1::ExecuteCommandsResponse out;
  status = commands_->ExecuteCommands(Ctx().get(), batch, &out);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(ViolatedField(status), "commands[1].make_deposit.reference");
  EXPECT_EQ(Head(), head);
}

TEST_F(BadInputTest, BytesThatAreNoRequestAreRejected) {
  // A request that ends inside a field: no protobuf parser accepts it. Sent as raw bytes.
  const uint64_t head = Head();
  grpc::GenericStub stub(channel_);
  const std::string bytes(
      "\x0a\x20"
      "abc",
      5);  // account_id, 32 bytes announced, 3 sent.
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/fidelis.v1.AccountCommands/MakeDeposit", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("does not parse as fidelis.v1.MakeDepositRequest"),
            std::string::npos)
      << status.error_message();
  EXPECT_EQ(Head(), head);
}

}  // namespace
}  // namespace fidelis::testing
