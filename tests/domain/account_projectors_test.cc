#include "domain/account_projectors.h"

#include "domain/event_types.h"
#include "fidelis/v1/events.pb.h"
#include "fidelis/v1/projections.pb.h"
#include "gtest/gtest.h"
#include "tests/domain/fake_row_store.h"
#include "tests/test_util.h"

namespace fidelis {
namespace {

constexpr char kId[] = "0123456789abcdef0123456789abcdef";

class AccountProjectorsTest : public ::testing::Test {
 protected:
  void Feed(const Projector& projector, std::string_view type,
            const google::protobuf::Message& payload, int64_t when) {
    EventView view;
    view.global_position = ++position_;
    view.stream_id = stream_;
    view.type = type;
    view.timestamp_micros = when;
    view.payload = &payload;
    ASSERT_OK(projector.Apply(view, rows_));
  }

  void FeedHistory(const Projector& p) {
    v1::AccountOpened opened;
    opened.set_account_id(kId);
    opened.set_account_number("N1");
    opened.set_holder_name("Ada");
    opened.mutable_opening_deposit()->set_minor_units(1000);
    opened.mutable_opening_deposit()->set_currency("EUR");
    Feed(p, kAccountOpened, opened, 1'000'000);
    v1::DepositMade deposit;
    deposit.mutable_amount()->set_minor_units(250);
    Feed(p, kDepositMade, deposit, 2'000'000);
    v1::WithdrawalMade withdrawal;
    withdrawal.mutable_amount()->set_minor_units(1250);
    Feed(p, kWithdrawalMade, withdrawal, 3'000'000);
    v1::AccountClosed closed;
    Feed(p, kAccountClosed, closed, 4'000'000);
  }

  std::string stream_ = AccountStream(kId);
  uint64_t position_ = 0;
  testing::FakeRowStore rows_;
};

TEST_F(AccountProjectorsTest, SummaryFollowsBalanceCountAndStatus) {
  AccountSummaryProjector projector;
  FeedHistory(projector);
  const auto* row = rows_.Get<v1::AccountSummary>(kId);
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->account_number(), "N1");
  EXPECT_EQ(row->holder_name(), "Ada");
  EXPECT_EQ(row->balance().minor_units(), 0);
  EXPECT_EQ(row->balance().currency(), "EUR");
  EXPECT_EQ(row->transaction_count(), 3);
  EXPECT_EQ(row->last_transaction_time().seconds(), 3);
  EXPECT_EQ(row->status(), v1::ACCOUNT_STATUS_CLOSED);
}

TEST_F(AccountProjectorsTest, SummaryTimesKeepMicroseconds) {
  AccountSummaryProjector projector;
  v1::AccountOpened opened;
  opened.set_account_id(kId);
  opened.mutable_opening_deposit()->set_minor_units(1);
  Feed(projector, kAccountOpened, opened, -1);  // One microsecond before the epoch.
  const auto* row = rows_.Get<v1::AccountSummary>(kId);
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->last_transaction_time().seconds(), -1);
  EXPECT_EQ(row->last_transaction_time().nanos(), 999'999'000);
  v1::DepositMade deposit;
  deposit.mutable_amount()->set_minor_units(1);
  Feed(projector, kDepositMade, deposit, 1'500'000);
  EXPECT_EQ(row->last_transaction_time().seconds(), 1);
  EXPECT_EQ(row->last_transaction_time().nanos(), 500'000'000);
}

TEST_F(AccountProjectorsTest, ReportTimesStayNormalizedBeforeTheEpoch) {
  AccountReportProjector projector(1);
  v1::AccountOpened opened;
  opened.set_account_id(kId);
  Feed(projector, kAccountOpened, opened, 2'000'007);
  v1::AccountClosed closed;
  Feed(projector, kAccountClosed, closed, -2'000'001);
  const auto* row = rows_.Get<v1::AccountReport>(kId);
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->opened_at().seconds(), 2);
  EXPECT_EQ(row->opened_at().nanos(), 7'000);
  EXPECT_EQ(row->closed_at().seconds(), -3);
  EXPECT_EQ(row->closed_at().nanos(), 999'999'000);
}

TEST_F(AccountProjectorsTest, ReportTotalsDepositsAndWithdrawalsSeparately) {
  AccountReportProjector projector(1);
  FeedHistory(projector);
  const auto* row = rows_.Get<v1::AccountReport>(kId);
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->total_deposits(), 1250);
  EXPECT_EQ(row->deposit_count(), 2);
  EXPECT_EQ(row->total_withdrawals(), 1250);
  EXPECT_EQ(row->withdrawal_count(), 1);
  EXPECT_EQ(row->opened_at().seconds(), 1);
  EXPECT_EQ(row->closed_at().seconds(), 4);
  // The v2 fields stay empty in v1.
  EXPECT_EQ(row->months_size(), 0);
  EXPECT_EQ(row->largest_deposit(), 0);
}

TEST_F(AccountProjectorsTest, ReportV2AddsMonthlyTotalsAndTheLargestDeposit) {
  AccountReportProjector projector(2);
  constexpr int64_t kJan15 = 1705276800'000'000;  // 2024-01-15T00:00:00Z
  constexpr int64_t kFeb20 = 1708387200'000'000;  // 2024-02-20T00:00:00Z
  constexpr int64_t kMar01 = 1709251200'000'000;  // 2024-03-01T00:00:00Z
  v1::AccountOpened opened;
  opened.set_account_id(kId);
  opened.mutable_opening_deposit()->set_minor_units(300);
  opened.mutable_opening_deposit()->set_currency("EUR");
  Feed(projector, kAccountOpened, opened, kJan15);
  v1::DepositMade deposit;
  deposit.mutable_amount()->set_minor_units(700);
  Feed(projector, kDepositMade, deposit, kMar01);
  v1::WithdrawalMade withdrawal;
  withdrawal.mutable_amount()->set_minor_units(100);
  Feed(projector, kWithdrawalMade, withdrawal, kFeb20);  // Out of order: sorted in.
  deposit.mutable_amount()->set_minor_units(50);
  Feed(projector, kDepositMade, deposit, kMar01 + 1);
  const auto* row = rows_.Get<v1::AccountReport>(kId);
  ASSERT_NE(row, nullptr);
  // v1's fields are unchanged by v2.
  EXPECT_EQ(row->total_deposits(), 1050);
  EXPECT_EQ(row->deposit_count(), 3);
  EXPECT_EQ(row->largest_deposit(), 700);
  ASSERT_EQ(row->months_size(), 3);
  EXPECT_EQ(row->months(0).month(), "2024-01");
  EXPECT_EQ(row->months(0).deposits(), 300);
  EXPECT_EQ(row->months(1).month(), "2024-02");
  EXPECT_EQ(row->months(1).withdrawals(), 100);
  EXPECT_EQ(row->months(1).withdrawal_count(), 1);
  EXPECT_EQ(row->months(2).month(), "2024-03");
  EXPECT_EQ(row->months(2).deposits(), 750);
  EXPECT_EQ(row->months(2).deposit_count(), 2);
}

TEST_F(AccountProjectorsTest, AnEventBeforeTheOpeningIsAHandlerError) {
  AccountSummaryProjector projector;
  v1::DepositMade deposit;
  EventView view;
  view.stream_id = stream_;
  view.type = kDepositMade;
  view.payload = &deposit;
  EXPECT_CODE(projector.Apply(view, rows_), kFailedPrecondition);
}

// A replay prefetches the row RowKeyHint names; it must be the one Apply touches.
TEST_F(AccountProjectorsTest, RowKeyHintNamesTheRowApplyTouches) {
  const AccountSummaryProjector summary;
  const AccountReportProjector report_v1(1), report_v2(2);
  for (const Projector* projector :
       std::initializer_list<const Projector*>{&summary, &report_v1, &report_v2}) {
    testing::FakeRowStore rows;
    std::swap(rows, rows_);
    FeedHistory(*projector);
    std::swap(rows, rows_);
    const std::string hint(projector->RowKeyHint(stream_));
    EXPECT_EQ(hint, kId) << projector->name() << " v" << projector->version();
    EXPECT_EQ(rows.size(), 1u);
    bool found = false;
    ASSERT_OK(rows.Row(hint, *projector->RowType(hint), &found).status());
    EXPECT_TRUE(found) << projector->name() << " v" << projector->version();
  }
  // Rows not keyed by the stream give no hint.
  EXPECT_EQ(LedgerTotalsProjector().RowKeyHint(stream_), "");
}

}  // namespace
}  // namespace fidelis
