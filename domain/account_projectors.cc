#include "domain/account_projectors.h"

#include "absl/time/time.h"
#include "domain/event_types.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "fidelis/v1/events.pb.h"
#include "fidelis/v1/projections.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace fidelis {
namespace {

// Sets `out` to `micros` since the epoch in place, as TimeUtil::MicrosecondsToTimestamp()
// would (nanos never negative). Building a Timestamp and copying it in costs a construction,
// a Clear() and a merge per event, which a rebuild of millions of events notices.
void SetTimestamp(int64_t micros, google::protobuf::Timestamp* out) {
  int64_t seconds = micros / 1000000;
  int64_t rest = micros % 1000000;
  if (rest < 0) {
    rest += 1000000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest * 1000));
}

const std::vector<std::string>& AccountCategories() {
  static const auto* categories = new std::vector<std::string>{std::string(kAccountCategory)};
  return *categories;
}

absl::Status MissingRow(const EventView& event) {
  return absl::FailedPreconditionError(
      StrCat(event.type, " for ", event.stream_id, " arrived before the account was opened"));
}

// Saturating add for report totals, which (unlike balances) may grow without bound.
int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) return b > 0 ? INT64_MAX : INT64_MIN;
  return out;
}

template <typename Event>
int64_t AmountOf(const EventView& event) {
  return static_cast<const Event&>(*event.payload).amount().minor_units();
}

// The totals of the event's calendar month (UTC), created in month order if missing.
v1::MonthlyTotals* MonthOf(const EventView& event, v1::AccountReport* row) {
  const std::string month =
      absl::FormatTime("%Y-%m", absl::FromUnixMicros(event.timestamp_micros), absl::UTCTimeZone());
  auto* months = row->mutable_months();
  int at = months->size();
  while (at > 0 && months->Get(at - 1).month() > month) --at;
  if (at > 0 && months->Get(at - 1).month() == month) return months->Mutable(at - 1);
  v1::MonthlyTotals* added = months->Add();
  added->set_month(month);
  for (int i = months->size() - 1; i > at; --i) months->SwapElements(i, i - 1);
  return months->Mutable(at);
}

// The v2 fields of AccountReport: per-month totals and the largest deposit.
void ApplyReportV2(const EventView& event, v1::AccountReport* row) {
  if (event.type == kAccountOpened) {
    const int64_t deposit =
        static_cast<const v1::AccountOpened&>(*event.payload).opening_deposit().minor_units();
    if (deposit <= 0) return;
    v1::MonthlyTotals* month = MonthOf(event, row);
    month->set_deposits(SaturatingAdd(month->deposits(), deposit));
    month->set_deposit_count(month->deposit_count() + 1);
    row->set_largest_deposit(std::max(row->largest_deposit(), deposit));
  } else if (event.type == kDepositMade) {
    const int64_t deposit = AmountOf<v1::DepositMade>(event);
    v1::MonthlyTotals* month = MonthOf(event, row);
    month->set_deposits(SaturatingAdd(month->deposits(), deposit));
    month->set_deposit_count(month->deposit_count() + 1);
    row->set_largest_deposit(std::max(row->largest_deposit(), deposit));
  } else if (event.type == kWithdrawalMade) {
    v1::MonthlyTotals* month = MonthOf(event, row);
    month->set_withdrawals(
        SaturatingAdd(month->withdrawals(), AmountOf<v1::WithdrawalMade>(event)));
    month->set_withdrawal_count(month->withdrawal_count() + 1);
  } else if (event.type == kTransferCredited) {
    v1::MonthlyTotals* month = MonthOf(event, row);
    month->set_transfers_in(
        SaturatingAdd(month->transfers_in(), AmountOf<v1::TransferCredited>(event)));
  } else if (event.type == kTransferDebited) {
    v1::MonthlyTotals* month = MonthOf(event, row);
    month->set_transfers_out(
        SaturatingAdd(month->transfers_out(), AmountOf<v1::TransferDebited>(event)));
  }
}

}  // namespace

const std::vector<std::string>& AccountSummaryProjector::categories() const {
  return AccountCategories();
}

absl::Status AccountSummaryProjector::Apply(const EventView& event, RowStore& rows) const {
  bool found = false;
  ASSIGN_OR_RETURN(v1::AccountSummary * row,
                   rows.Typed<v1::AccountSummary>(StreamEntityId(event.stream_id), &found));
  if (event.type == kAccountOpened) {
    const auto& e = static_cast<const v1::AccountOpened&>(*event.payload);
    row->set_account_id(e.account_id());
    row->set_account_number(e.account_number());
    row->set_holder_name(e.holder_name());
    *row->mutable_balance() = e.opening_deposit();
    row->set_status(v1::ACCOUNT_STATUS_OPEN);
    if (e.opening_deposit().minor_units() > 0) {
      row->set_transaction_count(1);
      SetTimestamp(event.timestamp_micros, row->mutable_last_transaction_time());
    }
    return absl::OkStatus();
  }
  if (!found) return MissingRow(event);
  int64_t delta = 0;
  if (event.type == kDepositMade) {
    delta = AmountOf<v1::DepositMade>(event);
  } else if (event.type == kWithdrawalMade) {
    delta = -AmountOf<v1::WithdrawalMade>(event);
  } else if (event.type == kTransferCredited) {
    delta = AmountOf<v1::TransferCredited>(event);
    row->set_transfers_in(row->transfers_in() + 1);
  } else if (event.type == kTransferDebited) {
    delta = -AmountOf<v1::TransferDebited>(event);
    row->set_transfers_out(row->transfers_out() + 1);
  } else if (event.type == kAccountClosed) {
    row->set_status(v1::ACCOUNT_STATUS_CLOSED);
    return absl::OkStatus();
  } else {
    return absl::OkStatus();
  }
  row->mutable_balance()->set_minor_units(row->balance().minor_units() + delta);
  row->set_transaction_count(row->transaction_count() + 1);
  SetTimestamp(event.timestamp_micros, row->mutable_last_transaction_time());
  return absl::OkStatus();
}

const std::vector<std::string>& AccountReportProjector::categories() const {
  return AccountCategories();
}

absl::Status AccountReportProjector::Apply(const EventView& event, RowStore& rows) const {
  bool found = false;
  ASSIGN_OR_RETURN(v1::AccountReport * row,
                   rows.Typed<v1::AccountReport>(StreamEntityId(event.stream_id), &found));
  if (event.type == kAccountOpened) {
    const auto& e = static_cast<const v1::AccountOpened&>(*event.payload);
    row->set_account_id(e.account_id());
    row->set_currency(e.opening_deposit().currency());
    SetTimestamp(event.timestamp_micros, row->mutable_opened_at());
    if (e.opening_deposit().minor_units() > 0) {
      row->set_total_deposits(e.opening_deposit().minor_units());
      row->set_deposit_count(1);
    }
    if (version_ >= 2) ApplyReportV2(event, row);
    return absl::OkStatus();
  }
  if (!found) return MissingRow(event);
  if (version_ >= 2) ApplyReportV2(event, row);
  if (event.type == kDepositMade) {
    row->set_total_deposits(SaturatingAdd(row->total_deposits(), AmountOf<v1::DepositMade>(event)));
    row->set_deposit_count(row->deposit_count() + 1);
  } else if (event.type == kWithdrawalMade) {
    row->set_total_withdrawals(
        SaturatingAdd(row->total_withdrawals(), AmountOf<v1::WithdrawalMade>(event)));
    row->set_withdrawal_count(row->withdrawal_count() + 1);
  } else if (event.type == kTransferCredited) {
    row->set_total_transfers_in(
        SaturatingAdd(row->total_transfers_in(), AmountOf<v1::TransferCredited>(event)));
    row->set_transfer_in_count(row->transfer_in_count() + 1);
  } else if (event.type == kTransferDebited) {
    row->set_total_transfers_out(
        SaturatingAdd(row->total_transfers_out(), AmountOf<v1::TransferDebited>(event)));
    row->set_transfer_out_count(row->transfer_out_count() + 1);
  } else if (event.type == kAccountClosed) {
    SetTimestamp(event.timestamp_micros, row->mutable_closed_at());
  }
  return absl::OkStatus();
}

const std::vector<std::string>& LedgerTotalsProjector::categories() const {
  return AccountCategories();
}

absl::Status LedgerTotalsProjector::Apply(const EventView& event, RowStore& rows) const {
  bool found = false;
  auto currency_row = [&](const v1::Money& money) -> absl::StatusOr<v1::CurrencyTotal*> {
    ASSIGN_OR_RETURN(v1::CurrencyTotal * row,
                     rows.Typed<v1::CurrencyTotal>(StrCat("currency/", money.currency()), &found));
    row->set_currency(money.currency());
    return row;
  };
  if (event.type == kAccountOpened) {
    const auto& e = static_cast<const v1::AccountOpened&>(*event.payload);
    ASSIGN_OR_RETURN(v1::CurrencyTotal * row, currency_row(e.opening_deposit()));
    row->set_total_minor_units(
        SaturatingAdd(row->total_minor_units(), e.opening_deposit().minor_units()));
    row->set_accounts_opened(row->accounts_opened() + 1);
  } else if (event.type == kDepositMade) {
    const auto& e = static_cast<const v1::DepositMade&>(*event.payload);
    ASSIGN_OR_RETURN(v1::CurrencyTotal * row, currency_row(e.amount()));
    row->set_total_minor_units(SaturatingAdd(row->total_minor_units(), e.amount().minor_units()));
  } else if (event.type == kWithdrawalMade) {
    const auto& e = static_cast<const v1::WithdrawalMade&>(*event.payload);
    ASSIGN_OR_RETURN(v1::CurrencyTotal * row, currency_row(e.amount()));
    row->set_total_minor_units(SaturatingAdd(row->total_minor_units(), -e.amount().minor_units()));
  } else if (event.type == kTransferDebited) {
    // A transfer moves money between accounts: the total is unchanged; count it once, on
    // its debit half.
    const auto& e = static_cast<const v1::TransferDebited&>(*event.payload);
    ASSIGN_OR_RETURN(v1::CurrencyTotal * row, currency_row(e.amount()));
    row->set_transfers(row->transfers() + 1);
    const std::string day = absl::FormatTime(
        "%Y-%m-%d", absl::FromUnixMicros(event.timestamp_micros), absl::UTCTimeZone());
    ASSIGN_OR_RETURN(v1::DailyTransfers * daily,
                     rows.Typed<v1::DailyTransfers>(StrCat("day/", day), &found));
    daily->set_day(day);
    daily->set_transfers(daily->transfers() + 1);
  }
  return absl::OkStatus();
}

const google::protobuf::Message* AccountSummaryProjector::RowType(std::string_view) const {
  return &v1::AccountSummary::default_instance();
}

const google::protobuf::Message* AccountReportProjector::RowType(std::string_view) const {
  return &v1::AccountReport::default_instance();
}

std::string_view AccountSummaryProjector::RowKeyHint(std::string_view stream_id) const {
  return StreamEntityId(stream_id);
}

std::string_view AccountReportProjector::RowKeyHint(std::string_view stream_id) const {
  return StreamEntityId(stream_id);
}

const google::protobuf::Message* LedgerTotalsProjector::RowType(std::string_view key) const {
  if (key.substr(0, 9) == "currency/") return &v1::CurrencyTotal::default_instance();
  if (key.substr(0, 4) == "day/") return &v1::DailyTransfers::default_instance();
  return nullptr;
}

std::vector<std::unique_ptr<Projector>> MakeAccountProjectors() {
  std::vector<std::unique_ptr<Projector>> projectors;
  projectors.push_back(std::make_unique<AccountSummaryProjector>());
  projectors.push_back(std::make_unique<AccountReportProjector>(1));
  projectors.push_back(std::make_unique<AccountReportProjector>(2));
  projectors.push_back(std::make_unique<LedgerTotalsProjector>());
  return projectors;
}

}  // namespace fidelis
