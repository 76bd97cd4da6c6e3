// A rebuild's progress tells the truth: its rate is the events done over the wall-clock time
// they took, pauses included, and its ETA is the time that actually remains. Checked on a
// rebuild held to a rate cap, read from the stream as a client sees it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "server/seed/seeder.h"
#include "storage/rocksdb_event_store.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

class RebuildProgressTest : public ServerTest {
 protected:
  void Configure(server::ServerOptions& options) override { options.sync_writes = false; }
  void SetUp() override {}
};

TEST_F(RebuildProgressTest, ACappedRebuildReportsItsRealRateAndTheTimeThatRemains) {
  constexpr uint64_t kEvents = 30000;
  constexpr uint64_t kCap = 5000;  // So the rebuild takes about 6 s.
  {
    auto db = storage::Database::Open(dir_.Sub("data"), {});
    ASSERT_OK(db);
    auto store = storage::RocksDbEventStore::Open(db->get());
    ASSERT_OK(store);
    server::SeedOptions seed;
    seed.accounts = 300;
    seed.events = kEvents;
    ASSERT_OK(server::Seed(**store, seed));
  }
  StartServer();

  v1::RebuildProjectionRequest request;
  request.set_projection("AccountSummary");
  request.set_mode(v1::IN_PLACE);
  request.set_batch_size(250);
  request.set_max_events_per_second(kCap);
  request.set_no_yield(true);
  request.set_no_idle_priority(true);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  auto reader = admin_->RebuildProjection(&context, request);
  struct Seen {
    absl::Time at;
    v1::RebuildProgress progress;
  };
  std::vector<Seen> seen;
  v1::RebuildProgress progress;
  while (reader->Read(&progress)) seen.push_back({absl::Now(), progress});
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(seen.empty());
  ASSERT_TRUE(seen.back().progress.has_result());
  ASSERT_EQ(seen.back().progress.phase(), v1::DONE);
  const absl::Time started = seen.front().at;
  const absl::Time finished = seen.back().at;
  ASSERT_GT(finished - started, absl::Seconds(4)) << "the cap did not hold the rebuild back";

  // Past its first seconds, and before its end, the rate is within 15% of the cap.
  int checked = 0;
  for (const Seen& s : seen) {
    if (s.progress.phase() != v1::REPLAYING || s.at - started < absl::Seconds(2)) continue;
    if (s.progress.events_processed() >= kEvents) continue;
    EXPECT_NEAR(s.progress.events_per_second(), kCap, 0.15 * kCap)
        << "at " << s.progress.events_processed() << " events";
    ++checked;
  }
  EXPECT_GE(checked, 10);

  // Halfway through, the ETA is within 25% of the time that actually remained.
  auto halfway = std::min_element(seen.begin(), seen.end(), [](const Seen& a, const Seen& b) {
    auto distance = [](const Seen& s) {
      return std::abs(static_cast<double>(s.progress.events_processed()) - kEvents / 2.0);
    };
    return distance(a) < distance(b);
  });
  ASSERT_EQ(halfway->progress.phase(), v1::REPLAYING);
  const double remained = absl::ToDoubleSeconds(finished - halfway->at);
  EXPECT_NEAR(halfway->progress.eta_seconds(), remained, 0.25 * remained)
      << "at " << halfway->progress.events_processed() << " of " << halfway->progress.events_total()
      << " events";
}

}  // namespace
}  // namespace fidelis::testing
