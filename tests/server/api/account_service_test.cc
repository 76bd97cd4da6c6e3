// Commands and queries over real gRPC against a real server with RocksDB on disk.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "domain/version.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

using AccountServiceTest = ServerTest;

TEST_F(AccountServiceTest, OpenReturnsIdVersionAndPosition) {
  v1::CommandResult result;
  ASSERT_TRUE(Open("NL01", 1000, &result).ok());
  EXPECT_EQ(result.account_id().size(), 32u);
  EXPECT_EQ(result.stream_version(), 1);
  EXPECT_EQ(result.global_position(), 2u);  // The opening and the number reservation.
  v1::AccountSummary summary = Summary(result.account_id(), result.global_position());
  EXPECT_EQ(summary.account_number(), "NL01");
  EXPECT_EQ(summary.balance().minor_units(), 1000);
  EXPECT_EQ(summary.status(), v1::ACCOUNT_STATUS_OPEN);
}

TEST_F(AccountServiceTest, ASecondAccountWithTheSameNumberIsAlreadyExists) {
  OpenOk("NL01", 0);
  const uint64_t head = Head();
  v1::CommandResult result;
  grpc::Status status = Open("NL01", 0, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(status.error_message().find("NL01"), std::string::npos);
  EXPECT_EQ(Head(), head);
}

TEST_F(AccountServiceTest, ValidationFailuresNameTheFieldAsBadRequest) {
  v1::CommandResult result;
  grpc::Status status = Open("", 0, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "account_number");
  status = Open("NL01", -5, &result);
  EXPECT_EQ(ViolatedField(status), "opening_deposit.minor_units");
  status = Open("NL01", 5, &result, "XXX");
  EXPECT_EQ(ViolatedField(status), "opening_deposit.currency");
  const std::string id = OpenOk("NL02", 100);
  const uint64_t head = Head();
  status = Deposit(id, 0, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "amount.minor_units");
  status = Deposit("xyz", 10, &result);
  EXPECT_EQ(ViolatedField(status), "account_id");
  EXPECT_EQ(Head(), head);
}

TEST_F(AccountServiceTest, UnknownAccountIsNotFound) {
  v1::CommandResult result;
  grpc::Status status = Deposit("0123456789abcdef0123456789abcdef", 10, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::GetAccountSummaryRequest request;
  request.set_account_id("0123456789abcdef0123456789abcdef");
  v1::AccountSummary summary;
  EXPECT_EQ(queries_->GetAccountSummary(Ctx().get(), request, &summary).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(AccountServiceTest, BusinessRulesAreFailedPrecondition) {
  const std::string id = OpenOk("NL01", 100);
  v1::CommandResult result;
  grpc::Status status = Withdraw(id, 101, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("balance is 100"), std::string::npos);
  EXPECT_NE(status.error_message().find("101"), std::string::npos);

  v1::CloseAccountRequest close;
  close.set_account_id(id);
  EXPECT_EQ(commands_->CloseAccount(Ctx().get(), close, &result).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);  // Balance is not zero.
  ASSERT_TRUE(Withdraw(id, 100, &result).ok());
  ASSERT_TRUE(commands_->CloseAccount(Ctx().get(), close, &result).ok());
  EXPECT_EQ(Deposit(id, 1, &result).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Summary(id, result.global_position()).status(), v1::ACCOUNT_STATUS_CLOSED);
}

TEST_F(AccountServiceTest, OverflowingDepositIsRejected) {
  const std::string id = OpenOk("NL01", INT64_MAX - 5);
  v1::CommandResult result;
  EXPECT_EQ(Deposit(id, 6, &result).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(Deposit(id, 5, &result).ok());
}

TEST_F(AccountServiceTest, ExpectedVersionMismatchIsAbortedNamingTheCurrentVersion) {
  const std::string id = OpenOk("NL01", 100);
  v1::MakeDepositRequest request;
  request.set_account_id(id);
  request.mutable_amount()->set_minor_units(5);
  request.mutable_amount()->set_currency("EUR");
  request.mutable_options()->set_expected_version(3);
  v1::CommandResult result;
  grpc::Status status = commands_->MakeDeposit(Ctx().get(), request, &result);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_NE(status.error_message().find("current version is 1"), std::string::npos);
  request.mutable_options()->set_expected_version(1);
  ASSERT_TRUE(commands_->MakeDeposit(Ctx().get(), request, &result).ok());
  EXPECT_EQ(result.stream_version(), 2);
}

TEST_F(AccountServiceTest, ARetryWithTheSameCommandIdReturnsTheOriginalResult) {
  const std::string id = OpenOk("NL01", 100);
  v1::CommandResult first, retry;
  ASSERT_TRUE(Deposit(id, 40, &first, "deposit-1").ok());
  const uint64_t head = Head();
  ASSERT_TRUE(Deposit(id, 40, &retry, "deposit-1").ok());
  EXPECT_TRUE(retry.deduplicated());
  EXPECT_EQ(retry.global_position(), first.global_position());
  EXPECT_EQ(retry.stream_version(), first.stream_version());
  EXPECT_EQ(retry.account_id(), id);
  EXPECT_EQ(Head(), head);
  grpc::Status status = Deposit(id, 41, &retry, "deposit-1");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "options.command_id");
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(Summary(id, head).balance().minor_units(), 140);
}

TEST_F(AccountServiceTest, ARetriedOpenReturnsTheSameAccount) {
  v1::OpenAccountRequest request;
  request.set_account_number("NL77");
  request.set_holder_name("Ada");
  request.mutable_opening_deposit()->set_currency("EUR");
  request.mutable_options()->set_command_id("open-77");
  v1::CommandResult first, retry;
  ASSERT_TRUE(commands_->OpenAccount(Ctx().get(), request, &first).ok());
  ASSERT_TRUE(commands_->OpenAccount(Ctx().get(), request, &retry).ok());
  EXPECT_EQ(retry.account_id(), first.account_id());
  EXPECT_TRUE(retry.deduplicated());
}

TEST_F(AccountServiceTest, ConcurrentWithdrawalsNeverOverdraw) {
  const std::string id = OpenOk("NL01", 1000);  // Affords exactly ten withdrawals of 100.
  std::atomic<int> successes{0}, refusals{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&] {
      v1::CommandResult result;
      grpc::Status status = Withdraw(id, 100, &result);
      if (status.ok()) ++successes;
      if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) ++refusals;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(successes.load(), 10);
  EXPECT_EQ(refusals.load(), 22);
  EXPECT_EQ(Summary(id, Head()).balance().minor_units(), 0);
}

TEST_F(AccountServiceTest, AQueryWithMinGlobalPositionReadsItsOwnWrite) {
  const std::string id = OpenOk("NL01", 0);
  for (int i = 1; i <= 20; ++i) {
    v1::CommandResult result;
    ASSERT_TRUE(Deposit(id, 1, &result).ok());
    EXPECT_EQ(Summary(id, result.global_position()).balance().minor_units(), i);
  }
  v1::GetAccountSummaryRequest request;
  request.set_account_id(id);
  request.set_min_global_position(Head() + 100);
  v1::AccountSummary summary;
  grpc::Status beyond = queries_->GetAccountSummary(Ctx().get(), request, &summary);
  EXPECT_EQ(beyond.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(beyond), "min_global_position");
}

TEST_F(AccountServiceTest, ListPagesThroughEveryAccountInStableOrder) {
  std::set<std::string> opened;
  for (int i = 0; i < 25; ++i) opened.insert(OpenOk("N" + std::to_string(i), i));
  std::vector<std::string> listed;
  v1::ListAccountSummariesRequest request;
  request.set_page_size(7);
  request.set_min_global_position(Head());
  int pages = 0;
  while (true) {
    v1::ListAccountSummariesResponse response;
    ASSERT_TRUE(queries_->ListAccountSummaries(Ctx().get(), request, &response).ok());
    for (const auto& s : response.accounts()) listed.push_back(s.account_id());
    ++pages;
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  EXPECT_EQ(pages, 4);
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end()));
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()), opened);
}

TEST_F(AccountServiceTest, TamperedPageTokensAndAbsurdPageSizesAreRejected) {
  OpenOk("N1", 0);
  OpenOk("N2", 0);
  v1::ListAccountSummariesRequest request;
  request.set_page_size(1);
  request.set_min_global_position(Head());
  v1::ListAccountSummariesResponse response;
  ASSERT_TRUE(queries_->ListAccountSummaries(Ctx().get(), request, &response).ok());
  std::string token = response.next_page_token();
  ASSERT_FALSE(token.empty());
  token[token.size() / 2] = token[token.size() / 2] == 'A' ? 'B' : 'A';
  request.set_page_token(token);
  grpc::Status status = queries_->ListAccountSummaries(Ctx().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "page_token");
  request.set_page_token("");
  request.set_page_size(-1);
  status = queries_->ListAccountSummaries(Ctx().get(), request, &response);
  EXPECT_EQ(ViolatedField(status), "page_size");
  request.set_page_size(100000);
  status = queries_->ListAccountSummaries(Ctx().get(), request, &response);
  EXPECT_EQ(ViolatedField(status), "page_size");
}

TEST_F(AccountServiceTest, TheReportCountsDepositsAndWithdrawals) {
  const std::string id = OpenOk("NL01", 500);
  v1::CommandResult result;
  ASSERT_TRUE(Deposit(id, 200, &result).ok());
  ASSERT_TRUE(Withdraw(id, 300, &result).ok());
  v1::GetAccountReportRequest request;
  request.set_account_id(id);
  request.set_min_global_position(result.global_position());
  v1::AccountReport report;
  ASSERT_TRUE(queries_->GetAccountReport(Ctx().get(), request, &report).ok());
  EXPECT_EQ(report.total_deposits(), 700);
  EXPECT_EQ(report.deposit_count(), 2);
  EXPECT_EQ(report.total_withdrawals(), 300);
  EXPECT_EQ(report.withdrawal_count(), 1);
  EXPECT_TRUE(report.has_opened_at());
}

TEST_F(AccountServiceTest, PingAndTheHealthServiceAnswer) {
  v1::PingResponse pong;
  EXPECT_TRUE(commands_->Ping(Ctx().get(), v1::PingRequest(), &pong).ok());
  // grpc.health.v1.Health/Check with an empty service name, as a raw unary call.
  grpc::GenericStub generic(channel_);
  grpc::ByteBuffer response;
  grpc::Slice empty("", 0);
  grpc::ByteBuffer request(&empty, 1);
  auto context = Ctx();
  grpc::Status status;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  generic.UnaryCall(context.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                    &response, [&](const grpc::Status& s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = s;
                      done = true;
                      cv.notify_one();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  // HealthCheckResponse{status: SERVING(1)} encodes as 08 01.
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size()),
            std::string("\x08\x01", 2));
  // The answer names the build; Ping's does not.
  const auto& metadata = context->GetServerInitialMetadata();
  auto version = metadata.find("fidelis-version");
  ASSERT_NE(version, metadata.end());
  EXPECT_EQ(std::string(version->second.data(), version->second.size()),
            std::string(Version()) + " (commit " + GitCommit() + ")");
  auto ping_context = Ctx();
  ASSERT_TRUE(commands_->Ping(ping_context.get(), v1::PingRequest(), &pong).ok());
  EXPECT_EQ(ping_context->GetServerInitialMetadata().count("fidelis-version"), 0u);
}

TEST_F(AccountServiceTest, LoadingAnAggregateUsesTheSnapshotNotTheWholeStream) {
  const std::string id = OpenOk("NL01", 0);
  for (int i = 0; i < 150; ++i) {
    v1::CommandResult result;
    ASSERT_TRUE(Deposit(id, 1, &result).ok());
  }
  // A restart empties the aggregate cache; the next command must load the snapshot (written
  // at version 128) plus 23 events, and still decide on the true balance.
  RestartServer();
  v1::CommandResult result;
  EXPECT_EQ(Withdraw(id, 151, &result).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(Withdraw(id, 150, &result).ok());
  EXPECT_EQ(result.stream_version(), 152);
}

}  // namespace
}  // namespace fidelis::testing
