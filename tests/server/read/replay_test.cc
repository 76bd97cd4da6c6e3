// Replay on real RocksDB: a range of the log folded into rows through a test projector, with
// the unknown-event and handler-error policies, category filtering, the counts, and the
// pipelined replay giving the same rows as batch-by-batch replay.
#include "server/read/replay.h"

#include <memory>

#include "domain/event_registry.h"
#include "fidelis/v1/events.pb.h"
#include "fidelis/v1/projections.pb.h"
#include "gtest/gtest.h"
#include "storage/rocksdb_event_store.h"
#include "tests/domain/fake_row_store.h"
#include "tests/test_util.h"

namespace fidelis::server {
namespace {

// Counts deposits per stream of category "Acct" into an AccountReport row keyed by the stream;
// refuses a deposit whose reference is "refuse" (a handler error).
class CountingProjector : public Projector {
 public:
  std::string_view name() const override { return "Counting"; }
  uint32_t version() const override { return 1; }
  const std::vector<std::string>& categories() const override { return categories_; }
  absl::Status Apply(const EventView& event, RowStore& rows) const override {
    const auto& deposit = static_cast<const v1::DepositMade&>(*event.payload);
    if (deposit.reference() == "refuse") return absl::InvalidArgumentError("refused");
    bool found = false;
    auto row = rows.Typed<v1::AccountReport>(event.stream_id, &found);
    if (!row.ok()) return row.status();
    (*row)->set_deposit_count((*row)->deposit_count() + 1);
    (*row)->set_total_deposits((*row)->total_deposits() + deposit.amount().minor_units());
    return absl::OkStatus();
  }

 private:
  const std::vector<std::string> categories_ = {"Acct"};
};

class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::move(storage::Database::Open(dir_.path(), {})).value();
    store_ = std::move(storage::RocksDbEventStore::Open(db_.get())).value();
    registry_.RegisterSchema("Deposited", 1, &v1::DepositMade::default_instance());
  }

  // Appends one event to `stream`: a deposit of `amount`, or an event of `type` no schema
  // knows.
  void Append(const std::string& stream, int64_t amount, const std::string& reference = "",
              const std::string& type = "Deposited") {
    v1::DepositMade deposit;
    deposit.mutable_amount()->set_minor_units(amount);
    deposit.set_reference(reference);
    storage::AppendRequest request;
    storage::StreamAppend& append = request.streams.emplace_back();
    append.stream_id = stream;
    storage::EventToAppend& event = append.events.emplace_back();
    event.type = type;
    event.schema_version = 1;
    event.payload = deposit.SerializeAsString();
    ASSERT_OK(store_->Append(std::move(request)));
  }

  int64_t Count(const testing::FakeRowStore& rows, const std::string& stream) {
    const auto* row = rows.Get<v1::AccountReport>(stream);
    return row == nullptr ? 0 : row->deposit_count();
  }

  testing::TempDir dir_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::RocksDbEventStore> store_;
  EventRegistry registry_;
  CountingProjector projector_;
};

TEST_F(ReplayTest, ARangeIsFoldedAndOtherCategoriesAreCountedButNotApplied) {
  Append("Acct-1", 10);
  Append("Other-1", 99);
  Append("Acct-1", 5);
  Append("Acct-2", 1);
  EventDecoder decoder(&registry_);
  testing::FakeRowStore rows;
  ReplayStats stats;
  ASSERT_OK(ReplayRange(*store_, decoder, projector_, 0, 100, {}, rows, stats, "test"));
  EXPECT_EQ(stats.events_processed, 4u);
  EXPECT_EQ(stats.events_dispatched, 3u);
  EXPECT_EQ(stats.events_skipped, 0u);
  EXPECT_EQ(stats.last_position, 4u);
  EXPECT_EQ(Count(rows, "Acct-1"), 2);
  EXPECT_EQ(rows.Get<v1::AccountReport>("Acct-1")->total_deposits(), 15);
  EXPECT_EQ(Count(rows, "Other-1"), 0);

  // A range starts after the given position and stops at max_events.
  testing::FakeRowStore part;
  ReplayStats partial;
  ASSERT_OK(ReplayRange(*store_, decoder, projector_, 1, 2, {}, part, partial, "test"));
  EXPECT_EQ(partial.events_processed, 2u);
  EXPECT_EQ(partial.last_position, 3u);
  EXPECT_EQ(Count(part, "Acct-1"), 1);
}

TEST_F(ReplayTest, UnknownEventsAreSkippedOrStopTheReplayByPolicy) {
  Append("Acct-1", 10);
  Append("Acct-1", 0, "", "Retired");
  Append("Acct-1", 5);
  EventDecoder decoder(&registry_);
  {
    testing::FakeRowStore rows;
    ReplayStats stats;
    ASSERT_OK(ReplayRange(*store_, decoder, projector_, 0, 100, {}, rows, stats, "test"));
    EXPECT_EQ(stats.events_processed, 3u);
    EXPECT_EQ(stats.events_skipped, 1u);
    EXPECT_TRUE(stats.errors.empty());  // Unknown events are no errors, only skipped.
    EXPECT_EQ(Count(rows, "Acct-1"), 2);
  }
  {
    ReplayPolicy fail;
    fail.skip_unknown_events = false;
    testing::FakeRowStore rows;
    ReplayStats stats;
    absl::Status status = ReplayRange(*store_, decoder, projector_, 0, 100, fail, rows, stats, "t");
    EXPECT_CODE(status, kFailedPrecondition);
    EXPECT_NE(status.message().find("Retired v1 at global position 2"), absl::string_view::npos)
        << status;
    EXPECT_EQ(stats.last_position, 1u);  // Stopped before the unknown event.
    ASSERT_EQ(stats.errors.size(), 1u);
    EXPECT_EQ(stats.errors[0].global_position, 2u);
    EXPECT_EQ(stats.errors[0].event_type, "Retired");
  }
}

TEST_F(ReplayTest, HandlerErrorsAreRecordedAndSkippedOrStopTheReplayByPolicy) {
  Append("Acct-1", 10);
  Append("Acct-1", 1, "refuse");
  Append("Acct-1", 5);
  EventDecoder decoder(&registry_);
  {
    testing::FakeRowStore rows;
    ReplayStats stats;
    ASSERT_OK(ReplayRange(*store_, decoder, projector_, 0, 100, {}, rows, stats, "test"));
    EXPECT_EQ(stats.events_skipped, 1u);
    EXPECT_EQ(stats.events_dispatched, 2u);
    ASSERT_EQ(stats.errors.size(), 1u);
    EXPECT_EQ(stats.errors[0].global_position, 2u);
    EXPECT_EQ(stats.errors[0].message, "refused");
  }
  {
    ReplayPolicy fail;
    fail.skip_handler_errors = false;
    testing::FakeRowStore rows;
    ReplayStats stats;
    EXPECT_CODE(ReplayRange(*store_, decoder, projector_, 0, 100, fail, rows, stats, "test"),
                kFailedPrecondition);
    EXPECT_EQ(stats.last_position, 1u);
    EXPECT_EQ(Count(rows, "Acct-1"), 1);
  }
}

TEST_F(ReplayTest, APipelinedReplayFoldsTheSameRowsAsBatchByBatch) {
  for (int i = 0; i < 2500; ++i) {
    Append("Acct-" + std::to_string(i % 37), i);
    if (i % 100 == 0) Append("Other-1", 1);
  }
  EventDecoder decoder(&registry_);
  testing::FakeRowStore batched;
  ReplayStats batched_stats;
  while (batched_stats.last_position < store_->HeadPosition()) {
    ReplayStats batch;
    ASSERT_OK(ReplayRange(*store_, decoder, projector_, batched_stats.last_position, 300, {},
                          batched, batch, "test"));
    batched_stats.Add(batch);
  }
  testing::FakeRowStore pipelined;
  ReplayStats pipelined_stats;
  int batches = 0;
  ASSERT_OK(PipelinedReplay(*store_, registry_, projector_, 0, store_->HeadPosition(), 300, {},
                            pipelined, pipelined_stats, "test", [&](const ReplayStats&) {
                              ++batches;
                              return true;
                            }));
  EXPECT_GE(batches, 9);
  EXPECT_EQ(pipelined_stats.events_processed, batched_stats.events_processed);
  EXPECT_EQ(pipelined_stats.events_dispatched, 2500u);
  EXPECT_EQ(pipelined.size(), batched.size());
  for (int i = 0; i < 37; ++i) {
    const std::string stream = "Acct-" + std::to_string(i);
    EXPECT_EQ(pipelined.Get<v1::AccountReport>(stream)->SerializeAsString(),
              batched.Get<v1::AccountReport>(stream)->SerializeAsString());
  }
  // Asking to stop after a batch ends the replay with CANCELLED.
  testing::FakeRowStore stopped;
  ReplayStats stopped_stats;
  EXPECT_CODE(
      PipelinedReplay(*store_, registry_, projector_, 0, store_->HeadPosition(), 300, {}, stopped,
                      stopped_stats, "test", [](const ReplayStats&) { return false; }),
      kCancelled);
}

}  // namespace
}  // namespace fidelis::server
