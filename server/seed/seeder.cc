#include "server/seed/seeder.h"

#include <map>
#include <random>

#include "domain/event_types.h"
#include "domain/ids.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "fidelis/v1/events.pb.h"

namespace fidelis::server {
namespace {

struct Account {
  std::string id;
  std::string stream;
  int64_t balance = 0;
  bool closed = false;
};

// Collects events into append batches. Within a batch a stream appears once, so events are
// grouped by stream in first-appearance order; positions are known once the batch commits.
class BatchWriter {
 public:
  BatchWriter(storage::EventStore& store, SeedReport& report) : store_(store), report_(report) {}

  void Add(const std::string& stream, storage::EventToAppend event, bool unknown) {
    auto [it, inserted] = index_.emplace(stream, request_.streams.size());
    if (inserted) {
      request_.streams.emplace_back();
      request_.streams.back().stream_id = stream;
      request_.streams.back().expected_version = storage::kExpectAny;
      unknown_offsets_.emplace_back();
    }
    auto& events = request_.streams[it->second].events;
    if (unknown) unknown_offsets_[it->second].push_back(events.size());
    events.push_back(std::move(event));
    ++pending_;
  }

  size_t pending() const { return pending_; }

  absl::Status Flush() {
    if (pending_ == 0) return absl::OkStatus();
    std::vector<size_t> sizes;
    for (const auto& s : request_.streams) sizes.push_back(s.events.size());
    ASSIGN_OR_RETURN(storage::AppendResult result, store_.Append(std::move(request_)));
    if (report_.first_position == 0) report_.first_position = result.first_position;
    report_.last_position = result.last_position;
    uint64_t position = result.first_position;
    for (size_t s = 0; s < unknown_offsets_.size(); ++s) {
      for (size_t offset : unknown_offsets_[s])
        report_.unknown_positions.push_back(position + offset);
      position += sizes[s];
    }
    report_.events_written += pending_;
    request_ = storage::AppendRequest();
    index_.clear();
    unknown_offsets_.clear();
    pending_ = 0;
    return absl::OkStatus();
  }

 private:
  storage::EventStore& store_;
  SeedReport& report_;
  storage::AppendRequest request_;
  std::map<std::string, size_t> index_;
  std::vector<std::vector<size_t>> unknown_offsets_;
  size_t pending_ = 0;
};

}  // namespace

absl::StatusOr<SeedReport> Seed(storage::EventStore& store, const SeedOptions& options) {
  if (options.accounts == 0 || options.events < 2 * options.accounts) {
    return absl::InvalidArgumentError(
        StrCat("events (", options.events, ") must be at least twice accounts (", options.accounts,
               "): every opening writes two events"));
  }
  if (!(options.v1_fraction >= 0 && options.v1_fraction <= 1) ||
      !(options.close_fraction >= 0 && options.close_fraction <= 1)) {
    return absl::InvalidArgumentError("fractions must lie in [0, 1]");
  }
  if (options.unknown_events > options.events - 2 * options.accounts) {
    return absl::InvalidArgumentError("more unknown events than events after the openings");
  }
  std::mt19937_64 rng(options.seed);
  std::mt19937_64 schema_rng(options.seed ^ 0x5eed5eed5eed5eedULL);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  SeedReport report;
  BatchWriter writer(store, report);
  uint64_t written = 0;

  auto make = [&](std::string_view type, uint32_t version,
                  const google::protobuf::Message& payload) {
    storage::EventToAppend event;
    event.type = std::string(type);
    event.schema_version = version;
    event.timestamp_micros = options.start_micros + static_cast<int64_t>(written) * 1'000'000;
    payload.SerializeToString(&event.payload);
    event.metadata.set_command_id(StrCat("seed-", options.seed, "-", written));
    ++written;
    return event;
  };
  auto in_v1 = [&]() {
    const bool v1 = unit(schema_rng) < options.v1_fraction;
    report.v1_events += v1 ? 1 : 0;
    return v1;
  };
  auto flush_if_full = [&]() -> absl::Status {
    if (writer.pending() < options.batch_events) return absl::OkStatus();
    return writer.Flush();
  };
  auto money_event = [&](Account& account, std::string_view type, int64_t minor) {
    if (in_v1()) {
      const double units = static_cast<double>(minor) / 100.0;
      if (type == kDepositMade) {
        v1::DepositMadeV1 e;
        e.set_account_id(account.id);
        e.set_amount(units);
        writer.Add(account.stream, make(type, 1, e), false);
      } else {
        v1::WithdrawalMadeV1 e;
        e.set_account_id(account.id);
        e.set_amount(units);
        writer.Add(account.stream, make(type, 1, e), false);
      }
      return;
    }
    v1::Money money;
    money.set_minor_units(minor);
    money.set_currency("EUR");
    if (type == kDepositMade) {
      v1::DepositMade e;
      e.set_account_id(account.id);
      *e.mutable_amount() = money;
      writer.Add(account.stream, make(type, 2, e), false);
    } else {
      v1::WithdrawalMade e;
      e.set_account_id(account.id);
      *e.mutable_amount() = money;
      writer.Add(account.stream, make(type, 2, e), false);
    }
  };

  std::vector<Account> accounts(options.accounts);
  for (uint64_t i = 0; i < options.accounts; ++i) {
    Account& account = accounts[i];
    const uint64_t high = rng();
    account.id = HexId(high, rng());
    account.stream = AccountStream(account.id);
    account.balance = static_cast<int64_t>(rng() % 100000);
    const std::string number = StrCat("SEED", options.seed, "N", i);
    if (in_v1()) {
      v1::AccountOpenedV1 e;
      e.set_account_id(account.id);
      e.set_account_number(number);
      e.set_holder_name(StrCat("Holder ", i));
      e.set_opening_deposit(static_cast<double>(account.balance) / 100.0);
      writer.Add(account.stream, make(kAccountOpened, 1, e), false);
    } else {
      v1::AccountOpened e;
      e.set_account_id(account.id);
      e.set_account_number(number);
      e.set_holder_name(StrCat("Holder ", i));
      e.mutable_opening_deposit()->set_minor_units(account.balance);
      e.mutable_opening_deposit()->set_currency("EUR");
      writer.Add(account.stream, make(kAccountOpened, 2, e), false);
    }
    v1::AccountNumberReserved reserved;
    reserved.set_account_number(number);
    reserved.set_account_id(account.id);
    writer.Add(AccountNumberStream(number), make(kAccountNumberReserved, 1, reserved), false);
    report.account_ids.push_back(account.id);
    RETURN_IF_ERROR(flush_if_full());
  }

  const uint64_t rest = options.events - written;
  const uint64_t unknown_every =
      options.unknown_events == 0 ? 0 : std::max<uint64_t>(1, rest / options.unknown_events);
  uint64_t unknown_left = options.unknown_events;
  uint64_t open_accounts = accounts.size();
  while (written < options.events) {
    Account& account = accounts[rng() % accounts.size()];
    const uint64_t step = options.events - written;
    if (unknown_left > 0 && (rest - step) % unknown_every == 0) {
      std::string junk(16, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      storage::EventToAppend event;
      event.type = kRetiredEventType;
      event.schema_version = 1;
      event.timestamp_micros = options.start_micros + static_cast<int64_t>(written) * 1'000'000;
      event.payload = junk;
      ++written;
      writer.Add(account.stream, std::move(event), true);
      --unknown_left;
    } else if (account.closed) {
      continue;
    } else if (step >= 2 && open_accounts > 1 && unit(rng) < options.close_fraction * 0.01) {
      if (account.balance > 0) money_event(account, kWithdrawalMade, account.balance);
      account.balance = 0;
      if (written < options.events) {
        v1::AccountClosed e;
        e.set_account_id(account.id);
        e.set_reason("seeded");
        writer.Add(account.stream, make(kAccountClosed, 1, e), false);
        account.closed = true;
        --open_accounts;
      }
    } else {
      const int64_t amount = 1 + static_cast<int64_t>(rng() % 20000);
      if (rng() % 100 < 40 && account.balance >= amount) {
        money_event(account, kWithdrawalMade, amount);
        account.balance -= amount;
      } else {
        money_event(account, kDepositMade, amount);
        account.balance += amount;
      }
    }
    RETURN_IF_ERROR(flush_if_full());
  }
  RETURN_IF_ERROR(writer.Flush());
  return report;
}

}  // namespace fidelis::server
