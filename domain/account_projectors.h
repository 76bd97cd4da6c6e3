// The account read models.
//   AccountSummaryProjector (AccountSummary v1): one row per account, keyed by account id:
//     number, holder, balance, transaction count, last transaction time, status.
//   AccountReportProjector (AccountReport v1 and v2): one row per account, keyed by account
//     id: totals and counts of deposits, withdrawals and transfers, opened and closed times.
//     v2 adds totals per calendar month (UTC) and the largest single deposit; the binary
//     ships both, so a database built with v1 can move to v2 by a blue-green rebuild.
//   LedgerTotalsProjector (LedgerTotals v1): totals across accounts (below).
// An opening deposit above zero counts as a deposit and a transaction.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "domain/projector.h"

namespace fidelis {

inline constexpr std::string_view kAccountSummaryProjection = "AccountSummary";
inline constexpr std::string_view kAccountReportProjection = "AccountReport";
inline constexpr std::string_view kLedgerTotalsProjection = "LedgerTotals";

class AccountSummaryProjector : public Projector {
 public:
  std::string_view name() const override { return kAccountSummaryProjection; }
  uint32_t version() const override { return 1; }
  const std::vector<std::string>& categories() const override;
  absl::Status Apply(const EventView& event, RowStore& rows) const override;
  const google::protobuf::Message* RowType(std::string_view key) const override;
  std::string_view RowKeyHint(std::string_view stream_id) const override;
};

class AccountReportProjector : public Projector {
 public:
  // `version` is 1 or 2.
  explicit AccountReportProjector(uint32_t version) : version_(version) {}
  std::string_view name() const override { return kAccountReportProjection; }
  uint32_t version() const override { return version_; }
  const std::vector<std::string>& categories() const override;
  absl::Status Apply(const EventView& event, RowStore& rows) const override;
  const google::protobuf::Message* RowType(std::string_view key) const override;
  std::string_view RowKeyHint(std::string_view stream_id) const override;

 private:
  const uint32_t version_;
};

// LedgerTotals v1: rows "currency/<code>" (CurrencyTotal: money held across all accounts,
// accounts opened, transfers) and "day/<YYYY-MM-DD>" (DailyTransfers, UTC). Running totals
// across accounts: it requires global order and is never replayed in partitions.
class LedgerTotalsProjector : public Projector {
 public:
  std::string_view name() const override { return kLedgerTotalsProjection; }
  uint32_t version() const override { return 1; }
  const std::vector<std::string>& categories() const override;
  bool requires_global_order() const override { return true; }
  absl::Status Apply(const EventView& event, RowStore& rows) const override;
  const google::protobuf::Message* RowType(std::string_view key) const override;
};

// Every projector the binary ships, every version of each.
std::vector<std::unique_ptr<Projector>> MakeAccountProjectors();

}  // namespace fidelis
