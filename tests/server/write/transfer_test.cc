// Atomic transfers over real gRPC: the happy path, every error case, contention among many
// clients, and rebuilds of every projection agreeing with the live ones.
#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "fidelis/v1/events.pb.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

class TransferTest : public ServerTest {
 protected:
  grpc::Status Transfer(const std::string& from, const std::string& to, int64_t amount,
                        v1::TransferFundsResponse* response, const std::string& currency = "EUR",
                        std::optional<int64_t> from_expected = std::nullopt,
                        std::optional<int64_t> to_expected = std::nullopt,
                        const std::string& command_id = "") {
    v1::TransferFundsRequest request;
    request.set_from_account_id(from);
    request.set_to_account_id(to);
    request.mutable_amount()->set_minor_units(amount);
    request.mutable_amount()->set_currency(currency);
    request.set_reference("rent");
    if (from_expected) request.set_from_expected_version(*from_expected);
    if (to_expected) request.set_to_expected_version(*to_expected);
    request.mutable_options()->set_command_id(command_id);
    return commands_->TransferFunds(Ctx().get(), request, response);
  }

  std::vector<v1::RecordedEvent> AllEvents() {
    std::vector<v1::RecordedEvent> events;
    for (uint64_t from = 1;;) {
      v1::ReadAllRequest request;
      request.set_from_position(from);
      v1::ReadAllResponse response;
      EXPECT_TRUE(log_->ReadAll(Ctx().get(), request, &response).ok());
      if (response.events().empty()) break;
      for (const auto& e : response.events()) events.push_back(e);
      from = response.events().rbegin()->global_position() + 1;
    }
    return events;
  }

  v1::LedgerTotals Ledger() {
    v1::GetLedgerTotalsRequest request;
    request.set_min_global_position(Head());
    v1::LedgerTotals totals;
    EXPECT_TRUE(queries_->GetLedgerTotals(Ctx().get(), request, &totals).ok());
    return totals;
  }
};

TEST_F(TransferTest, ATransferWritesBothHalvesAtomicallyWithOneTransferId) {
  const std::string a = OpenOk("A1", 1000), b = OpenOk("B1", 0);
  v1::TransferFundsResponse response;
  ASSERT_TRUE(Transfer(a, b, 300, &response).ok());
  EXPECT_EQ(response.from_stream_version(), 2);
  EXPECT_EQ(response.to_stream_version(), 2);
  EXPECT_EQ(response.credit_global_position(), response.debit_global_position() + 1);
  EXPECT_EQ(response.transfer_id().size(), 32u);

  auto events = AllEvents();
  ASSERT_EQ(events.size(), 6u);
  const v1::RecordedEvent& debit = events[4];
  const v1::RecordedEvent& credit = events[5];
  EXPECT_EQ(debit.type(), "TransferDebited");
  EXPECT_EQ(credit.type(), "TransferCredited");
  EXPECT_EQ(debit.stream_id(), "Account-" + a);
  EXPECT_EQ(credit.stream_id(), "Account-" + b);
  v1::TransferDebited d;
  v1::TransferCredited c;
  ASSERT_TRUE(debit.payload().UnpackTo(&d));
  ASSERT_TRUE(credit.payload().UnpackTo(&c));
  EXPECT_EQ(d.transfer_id(), response.transfer_id());
  EXPECT_EQ(c.transfer_id(), response.transfer_id());
  EXPECT_EQ(debit.metadata().correlation_id(), response.transfer_id());
  EXPECT_EQ(credit.metadata().correlation_id(), response.transfer_id());

  EXPECT_EQ(Summary(a, Head()).balance().minor_units(), 700);
  EXPECT_EQ(Summary(b, Head()).transfers_in(), 1);
  v1::GetAccountReportRequest report_request;
  report_request.set_account_id(a);
  report_request.set_min_global_position(Head());
  v1::AccountReport report;
  ASSERT_TRUE(queries_->GetAccountReport(Ctx().get(), report_request, &report).ok());
  EXPECT_EQ(report.total_transfers_out(), 300);
  EXPECT_EQ(report.transfer_out_count(), 1);
  EXPECT_EQ(report.withdrawal_count(), 0);  // Kept apart from plain withdrawals.
  v1::LedgerTotals ledger = Ledger();
  ASSERT_EQ(ledger.currencies_size(), 1);
  EXPECT_EQ(ledger.currencies(0).total_minor_units(), 1000);  // Transfers move, not make.
  EXPECT_EQ(ledger.currencies(0).transfers(), 1);
  ASSERT_EQ(ledger.days_size(), 1);
  EXPECT_EQ(ledger.days(0).transfers(), 1);
}

TEST_F(TransferTest, EveryErrorCaseGetsItsCodeAndWritesNothing) {
  const std::string a = OpenOk("A1", 1000), b = OpenOk("B1", 0);
  v1::CommandResult opened;
  ASSERT_TRUE(Open("U1", 500, &opened, "USD").ok());
  const std::string usd = opened.account_id();
  const std::string ghost = "0123456789abcdef0123456789abcdef";
  const uint64_t head = Head();
  v1::TransferFundsResponse r;

  grpc::Status s = Transfer(a, a, 1, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(s), "to_account_id");
  EXPECT_EQ(ViolatedField(Transfer(a, b, 0, &r)), "amount.minor_units");
  EXPECT_EQ(ViolatedField(Transfer("bad", b, 1, &r)), "from_account_id");
  EXPECT_EQ(Transfer(a, usd, 1, &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  s = Transfer(a, b, 1001, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("insufficient funds"), std::string::npos);
  s = Transfer(ghost, b, 1, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("from_account_id"), std::string::npos);
  s = Transfer(a, ghost, 1, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("to_account_id"), std::string::npos);
  s = Transfer(a, b, 1, &r, "EUR", 5, std::nullopt);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_NE(s.error_message().find("Account-" + a), std::string::npos);
  s = Transfer(a, b, 1, &r, "EUR", 1, 9);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_NE(s.error_message().find("Account-" + b), std::string::npos);
  EXPECT_EQ(Head(), head);

  // A closed account can neither send nor receive.
  const std::string closed = OpenOk("C1", 0);
  v1::CloseAccountRequest close;
  close.set_account_id(closed);
  v1::CommandResult result;
  ASSERT_TRUE(commands_->CloseAccount(Ctx().get(), close, &result).ok());
  const uint64_t after_close = Head();
  EXPECT_EQ(Transfer(a, closed, 1, &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Transfer(closed, a, 1, &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Head(), after_close);

  // Idempotent by command_id, with matching expected versions this time.
  v1::TransferFundsResponse first, retry;
  ASSERT_TRUE(Transfer(a, b, 10, &first, "EUR", 1, 1, "t-1").ok());
  const uint64_t after_first = Head();
  ASSERT_TRUE(Transfer(a, b, 10, &retry, "EUR", 1, 1, "t-1").ok());
  EXPECT_TRUE(retry.deduplicated());
  EXPECT_EQ(retry.transfer_id(), first.transfer_id());
  EXPECT_EQ(retry.debit_global_position(), first.debit_global_position());
  EXPECT_EQ(Head(), after_first);
  EXPECT_EQ(ViolatedField(Transfer(a, b, 11, &retry, "EUR", std::nullopt, std::nullopt, "t-1")),
            "options.command_id");
}

TEST_F(TransferTest, ContendedTransfersKeepTheTotalAndApplyEachTransferOnce) {
  constexpr int kAccounts = 10;
  std::vector<std::string> ids;
  for (int i = 0; i < kAccounts; ++i) ids.push_back(OpenOk("K" + std::to_string(i), 10000));
  std::mutex mu;
  std::set<std::string> accepted;
  std::atomic<int> refused{0};
  const absl::Time until = absl::Now() + absl::Seconds(3);
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng(t);
      while (absl::Now() < until) {
        const int from = rng() % kAccounts;
        const int to = (from + 1 + rng() % (kAccounts - 1)) % kAccounts;
        v1::TransferFundsResponse response;
        grpc::Status status = Transfer(ids[from], ids[to], 1 + rng() % 4000, &response);
        if (status.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          accepted.insert(response.transfer_id());
        } else {
          EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
              << status.error_message();
          ++refused;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  ASSERT_GT(accepted.size(), 100u);

  int64_t total = 0;
  for (const auto& id : ids) {
    const int64_t balance = Summary(id, Head()).balance().minor_units();
    EXPECT_GE(balance, 0);
    total += balance;
  }
  EXPECT_EQ(total, kAccounts * 10000);
  std::map<std::string, int> debits, credits;
  for (const auto& e : AllEvents()) {
    if (e.type() == "TransferDebited") {
      v1::TransferDebited d;
      ASSERT_TRUE(e.payload().UnpackTo(&d));
      ++debits[d.transfer_id()];
    } else if (e.type() == "TransferCredited") {
      v1::TransferCredited c;
      ASSERT_TRUE(e.payload().UnpackTo(&c));
      ++credits[c.transfer_id()];
    }
  }
  EXPECT_EQ(debits.size(), accepted.size());
  EXPECT_EQ(credits.size(), accepted.size());
  for (const auto& id : accepted) {
    EXPECT_EQ(debits[id], 1) << id;
    EXPECT_EQ(credits[id], 1) << id;
  }
  v1::LedgerTotals ledger = Ledger();
  ASSERT_EQ(ledger.currencies_size(), 1);
  EXPECT_EQ(ledger.currencies(0).total_minor_units(), kAccounts * 10000);
  EXPECT_EQ(ledger.currencies(0).transfers(), static_cast<int64_t>(accepted.size()));

  // Every projection rebuilt from the log equals its live state.
  std::map<std::string, std::map<std::string, std::string>> live;
  for (const char* name : {"AccountSummary", "AccountReport", "LedgerTotals"})
    live[name] = Rows(name);
  grpc::ClientContext context;
  auto reader = admin_->RebuildProjection(&context, v1::RebuildProjectionRequest());
  v1::RebuildProgress progress;
  int done = 0;
  while (reader->Read(&progress)) done += progress.phase() == v1::DONE ? 1 : 0;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(done, 3);
  for (const char* name : {"AccountSummary", "AccountReport", "LedgerTotals"}) {
    EXPECT_EQ(Rows(name), live[name]) << name;
  }
}

}  // namespace
}  // namespace fidelis::testing
