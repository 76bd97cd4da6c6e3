// fidelis-seed: writes a generated, deterministic account history into the data directory of
// a stopped fidelisd (see server/seed/seeder.h). Refuses to run while a server holds the database.
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "server/seed/seeder.h"
#include "server/system_clock.h"
#include "storage/database.h"
#include "storage/key_format.h"
#include "storage/rocksdb_event_store.h"

ABSL_FLAG(std::string, data_dir, "./data", "Data directory of a stopped fidelisd.");
ABSL_FLAG(uint64_t, seed, 1, "Random seed; the same seed gives the same history.");
ABSL_FLAG(uint64_t, accounts, 1000, "Accounts to open.");
ABSL_FLAG(uint64_t, events, 100000, "Total events to write, openings included.");
ABSL_FLAG(double, v1_fraction, 0, "Fraction of money events written in retired schema 1.");
ABSL_FLAG(uint64_t, unknown_events, 0, "Events of a retired type no upcaster knows.");
ABSL_FLAG(double, close_fraction, 0.01, "Fraction of accounts emptied and closed.");
ABSL_FLAG(bool, scan, false,
          "Write nothing: time a raw scan of the log (the replay baseline) and print it.");

int main(int argc, char** argv) {
  const fidelis::server::SystemClock clock;
  absl::SetProgramUsageMessage("fidelis-seed: generate an account history offline.");
  absl::ParseCommandLine(argc, argv);
  fidelis::storage::DatabaseOptions db_options;
  db_options.sync_writes = false;  // One flush at the end instead of a sync per batch.
  auto db = fidelis::storage::Database::Open(absl::GetFlag(FLAGS_data_dir), db_options);
  if (!db.ok()) {
    std::fprintf(stderr, "fidelis-seed: %s\n", db.status().ToString().c_str());
    return 1;
  }
  auto store = fidelis::storage::RocksDbEventStore::Open(db->get());
  if (!store.ok()) {
    std::fprintf(stderr, "fidelis-seed: %s\n", store.status().ToString().c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_scan)) {
    // The baseline a replay is measured against: iterate every event record, touching its
    // bytes, with no decoding.
    rocksdb::ReadOptions read_options;
    read_options.readahead_size = 2 << 20;
    std::unique_ptr<rocksdb::Iterator> it(
        (*db)->db()->NewIterator(read_options, (*db)->Family(fidelis::storage::kEventsFamily)));
    const absl::Time start = clock.Now();
    uint64_t count = 0, bytes = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ++count;
      bytes += it->value().size() + static_cast<unsigned char>(it->value().data()[0]);
    }
    const double seconds = absl::ToDoubleSeconds(clock.Now() - start);
    std::printf("raw scan: %llu events (%llu bytes) in %.3f s = %.0f events/s\n",
                static_cast<unsigned long long>(count), static_cast<unsigned long long>(bytes),
                seconds, count / seconds);
    return it->status().ok() ? 0 : 1;
  }
  fidelis::server::SeedOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.accounts = absl::GetFlag(FLAGS_accounts);
  options.events = absl::GetFlag(FLAGS_events);
  options.v1_fraction = absl::GetFlag(FLAGS_v1_fraction);
  options.unknown_events = absl::GetFlag(FLAGS_unknown_events);
  options.close_fraction = absl::GetFlag(FLAGS_close_fraction);
  const absl::Time start = clock.Now();
  auto report = fidelis::server::Seed(**store, options);
  if (!report.ok()) {
    std::fprintf(stderr, "fidelis-seed: %s\n", report.status().ToString().c_str());
    return 1;
  }
  rocksdb::FlushOptions flush;
  (*db)->db()->FlushWAL(true).PermitUncheckedError();
  for (const auto& name : (*db)->FamilyNames()) {
    if (auto* family = (*db)->Family(name))
      (*db)->db()->Flush(flush, family).PermitUncheckedError();
  }
  std::printf(
      "wrote %llu events (positions %llu-%llu, %llu in schema 1, %zu of unknown type) for "
      "%llu accounts in %.1f s\n",
      static_cast<unsigned long long>(report->events_written),
      static_cast<unsigned long long>(report->first_position),
      static_cast<unsigned long long>(report->last_position),
      static_cast<unsigned long long>(report->v1_events), report->unknown_positions.size(),
      static_cast<unsigned long long>(options.accounts),
      absl::ToDoubleSeconds(clock.Now() - start));
  return 0;
}
