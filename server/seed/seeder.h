// The offline history generator behind `fidelis-seed`: writes realistic account histories
// straight into a stopped server's data directory through the storage layer, including events
// in the retired schema-1 form and events of retired types that no upcaster knows.
//
// The output is a function of the options alone: the same seed gives the same log, byte for
// byte, and the same seed with a different v1_fraction gives the same history in other
// schemas (the schema choice draws from its own random stream).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/event_store.h"

namespace fidelis::server {

// The event type the generator writes for "retired types no upcaster knows".
inline constexpr char kRetiredEventType[] = "InterestAccrued";

struct SeedOptions {
  uint64_t seed = 1;
  uint64_t accounts = 1000;
  // Total events to write, account openings (two events each) included.
  uint64_t events = 100000;
  // Fraction of AccountOpened, DepositMade and WithdrawalMade events written in schema 1.
  double v1_fraction = 0;
  // Number of events of kRetiredEventType, spread over the history.
  uint64_t unknown_events = 0;
  // Fraction of accounts that are emptied and closed along the way.
  double close_fraction = 0.01;
  // Events per append batch.
  size_t batch_events = 4096;
  // Base of the event timestamps (microseconds since the epoch); one second per event.
  int64_t start_micros = 1'577'836'800'000'000;  // 2020-01-01T00:00:00Z
};

struct SeedReport {
  uint64_t events_written = 0;
  uint64_t v1_events = 0;
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  std::vector<uint64_t> unknown_positions;
  std::vector<std::string> account_ids;
};

// Appends the generated history to `store` (which may already hold events).
// INVALID_ARGUMENT for impossible options (fewer events than openings, fractions outside
// [0, 1]); errors from the store otherwise.
absl::StatusOr<SeedReport> Seed(storage::EventStore& store, const SeedOptions& options);

}  // namespace fidelis::server
