// In-place projection rebuilds over real gRPC against a real server on RocksDB: equality with
// the live projection, upcasting, the skip/fail policies, cancellation, re-attaching, and
// rebuilding while commands keep arriving.
#include <sched.h>
#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/notification.h"
#include "domain/event_types.h"
#include "fidelis/v1/events.pb.h"
#include "server/seed/seeder.h"
#include "storage/rocksdb_event_store.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

class RebuildTest : public ServerTest {
 protected:
  void Configure(server::ServerOptions& options) override { options.sync_writes = false; }
  // The servers of these tests start on data prepared first.
  void SetUp() override {}

  // Writes a seeded history into the data directory before the server starts.
  server::SeedReport SeedData(const server::SeedOptions& options, const std::string& dir) {
    auto db = storage::Database::Open(dir, {});
    EXPECT_OK(db);
    auto store = storage::RocksDbEventStore::Open(db->get());
    EXPECT_OK(store);
    auto report = server::Seed(**store, options);
    EXPECT_OK(report);
    return *report;
  }

  // Seeds `events` events over `accounts` accounts, starts the server on them and waits until
  // its live projections have caught up.
  server::SeedReport StartOnSeed(uint64_t accounts, uint64_t events) {
    server::SeedOptions seed;
    seed.accounts = accounts;
    seed.events = events;
    server::SeedReport report = SeedData(seed, dir_.Sub("data"));
    StartServer();
    WaitForProjections();
    return report;
  }

  std::vector<v1::RebuildProgress> Rebuild(const v1::RebuildProjectionRequest& request,
                                           grpc::Status* status = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
    auto reader = admin_->RebuildProjection(&context, request);
    std::vector<v1::RebuildProgress> messages;
    v1::RebuildProgress progress;
    while (reader->Read(&progress)) messages.push_back(progress);
    grpc::Status finished = reader->Finish();
    if (status != nullptr) *status = finished;
    EXPECT_TRUE(status != nullptr || finished.ok()) << finished.error_message();
    return messages;
  }

  // These tests cover in-place rebuilds (blue_green_test.cc covers the other mode).
  static v1::RebuildProjectionRequest Request(const std::string& projection) {
    v1::RebuildProjectionRequest request;
    request.set_projection(projection);
    request.set_mode(v1::IN_PLACE);
    return request;
  }

  void WaitForProjections() {
    const uint64_t head = Head();
    for (const auto& runner : LiveBuilds()) {
      ASSERT_OK(runner->WaitFor(head, absl::Now() + absl::Seconds(60)));
    }
  }

  grpc::Status SummaryStatus(const std::string& id) {
    v1::GetAccountSummaryRequest request;
    request.set_account_id(id);
    v1::AccountSummary summary;
    return queries_->GetAccountSummary(Ctx().get(), request, &summary);
  }
};

TEST_F(RebuildTest, ARebuiltProjectionEqualsTheLiveOneAfterARandomHistory) {
  StartServer();
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(OpenOk("R" + std::to_string(i), 5000));
  std::atomic<int> commands{100}, failed_withdrawals{0}, closes{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 1240; ++i) {
        const std::string& id = ids[rng() % ids.size()];
        v1::CommandResult result;
        const int dice = rng() % 100;
        grpc::Status status;
        if (dice < 45) {
          status = Deposit(id, 1 + rng() % 3000, &result);
        } else if (dice < 95) {
          status = Withdraw(id, 1 + rng() % 6000, &result);
          if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) ++failed_withdrawals;
        } else {
          // Empty the account and close it; either may be refused, which is part of the test.
          v1::AccountSummary s = Summary(id, 0);
          if (s.balance().minor_units() > 0) Withdraw(id, s.balance().minor_units(), &result);
          v1::CloseAccountRequest close;
          close.set_account_id(id);
          if (commands_->CloseAccount(Ctx().get(), close, &result).ok()) ++closes;
        }
        ++commands;
      }
    });
  }
  for (auto& c : clients) c.join();
  ASSERT_GE(commands.load(), 10000);
  EXPECT_GT(failed_withdrawals.load(), 0);
  EXPECT_GT(closes.load(), 0);
  WaitForProjections();
  const auto summary_before = Rows("AccountSummary");
  const auto report_before = Rows("AccountReport");
  const auto ledger_before = Rows("LedgerTotals");
  ASSERT_EQ(summary_before.size(), 100u);

  auto messages = Rebuild(Request(""));
  int done = 0;
  for (const auto& m : messages) done += m.phase() == v1::DONE ? 1 : 0;
  EXPECT_EQ(done, 3);
  EXPECT_EQ(Rows("AccountSummary"), summary_before);
  EXPECT_EQ(Rows("AccountReport"), report_before);
  EXPECT_EQ(Rows("LedgerTotals"), ledger_before);
  // Idempotent: a second run gives the same data.
  Rebuild(Request("AccountSummary"));
  EXPECT_EQ(Rows("AccountSummary"), summary_before);
}

TEST_F(RebuildTest, ProgressReportsEveryPhaseAndTheResult) {
  server::SeedOptions seed;
  seed.accounts = 50;
  seed.events = 3000;
  SeedData(seed, dir_.Sub("data"));
  StartServer();
  v1::RebuildProjectionRequest request = Request("AccountReport");
  request.set_batch_size(100);
  auto messages = Rebuild(request);
  std::vector<v1::RebuildPhase> phases;
  for (const auto& m : messages) {
    if (phases.empty() || phases.back() != m.phase()) phases.push_back(m.phase());
    EXPECT_EQ(m.projection(), "AccountReport");
    EXPECT_EQ(m.rebuild_id(), messages[0].rebuild_id());
    EXPECT_LE(m.events_processed(), m.events_total());
  }
  EXPECT_EQ(phases, (std::vector<v1::RebuildPhase>{v1::PREPARING, v1::TRUNCATING, v1::REPLAYING,
                                                   v1::CATCHING_UP, v1::DONE}));
  const v1::RebuildProgress& last = messages.back();
  ASSERT_TRUE(last.has_result());
  const v1::RebuildResult& r = last.result();
  EXPECT_TRUE(r.success());
  EXPECT_EQ(r.projection_name(), "AccountReport");
  EXPECT_EQ(r.projectors_processed(), 1u);
  EXPECT_EQ(r.categories_processed(), 1u);
  EXPECT_EQ(r.events_processed(), 3000u);
  EXPECT_EQ(r.events_dispatched(), 3000u - 50u);  // Number reservations are not consumed.
  EXPECT_EQ(r.events_skipped(), 0u);
  EXPECT_EQ(last.events_total(), 3000u);
  EXPECT_EQ(last.current_position(), 3000u);
}

TEST_F(RebuildTest, VersionOneHistoryRebuildsToTheSameBalancesAsItsVersionTwoTwin) {
  server::SeedOptions seed;
  seed.seed = 99;
  seed.accounts = 200;
  seed.events = 20000;
  seed.v1_fraction = 0;
  SeedData(seed, dir_.Sub("v2"));
  seed.v1_fraction = 0.5;
  const server::SeedReport v1_report = SeedData(seed, dir_.Sub("data"));
  ASSERT_GT(v1_report.v1_events, 5000u);

  StartServer();  // On the v1 log.
  Rebuild(Request(""));
  const auto summary_v1 = Rows("AccountSummary");
  const auto report_v1 = Rows("AccountReport");
  const auto ledger_v1 = Rows("LedgerTotals");
  StopServer();
  std::filesystem::rename(dir_.Sub("data"), dir_.Sub("v1"));
  std::filesystem::rename(dir_.Sub("v2"), dir_.Sub("data"));
  StartServer();  // On the v2 twin.
  WaitForProjections();
  EXPECT_EQ(Rows("AccountSummary"), summary_v1);
  EXPECT_EQ(Rows("AccountReport"), report_v1);
  EXPECT_EQ(Rows("LedgerTotals"), ledger_v1);
}

class RebuildPolicyTest : public RebuildTest {
 protected:
  void SetUp() override {
    server::SeedOptions seed;
    seed.accounts = 20;
    seed.events = 2000;
    seed.unknown_events = 4;
    report_ = SeedData(seed, dir_.Sub("data"));
    ASSERT_EQ(report_.unknown_positions.size(), 4u);
    // A deposit for an account that was never opened: the projectors' handlers refuse it.
    auto db = storage::Database::Open(dir_.Sub("data"), {});
    ASSERT_OK(db);
    auto store = storage::RocksDbEventStore::Open(db->get());
    ASSERT_OK(store);
    v1::DepositMade orphan;
    orphan.mutable_amount()->set_minor_units(1);
    orphan.mutable_amount()->set_currency("EUR");
    storage::AppendRequest request;
    request.streams.emplace_back();
    request.streams[0].stream_id = AccountStream("0123456789abcdef0123456789abcdef");
    request.streams[0].events.push_back(
        {std::string(kDepositMade), 2, 1, orphan.SerializeAsString(), {}});
    auto appended = (*store)->Append(request);
    ASSERT_OK(appended);
    orphan_position_ = appended->first_position;
    store->reset();
    db->reset();
    StartServer();
  }

  v1::RebuildProgress RunWith(v1::EventPolicy unknown, v1::EventPolicy handler) {
    v1::RebuildProjectionRequest request = Request("AccountSummary");
    request.set_unknown_event_policy(unknown);
    request.set_handler_error_policy(handler);
    auto messages = Rebuild(request);
    EXPECT_FALSE(messages.empty());
    return messages.empty() ? v1::RebuildProgress() : messages.back();
  }

  server::SeedReport report_;
  uint64_t orphan_position_ = 0;
};

TEST_F(RebuildPolicyTest, SkipSkipCountsBothAndRecordsTheHandlerError) {
  v1::RebuildProgress last = RunWith(v1::SKIP, v1::SKIP);
  EXPECT_EQ(last.phase(), v1::DONE);
  EXPECT_EQ(last.result().events_skipped(), 5u);
  EXPECT_FALSE(last.result().success());  // A handler error was recorded.
  ASSERT_EQ(last.result().errors_size(), 1);
  EXPECT_EQ(last.result().errors(0).global_position(), orphan_position_);
  EXPECT_EQ(last.result().errors(0).event_type(), "DepositMade");
  EXPECT_EQ(last.result().events_processed(), orphan_position_);
  EXPECT_TRUE(SummaryStatus(report_.account_ids[0]).ok());
}

TEST_F(RebuildPolicyTest, FailOnUnknownStopsAtTheFirstUnknownEvent) {
  v1::RebuildProgress last = RunWith(v1::FAIL, v1::SKIP);
  EXPECT_EQ(last.phase(), v1::FAILED);
  EXPECT_FALSE(last.result().success());
  const uint64_t first_unknown = report_.unknown_positions[0];
  EXPECT_NE(last.result().failure().find("InterestAccrued"), std::string::npos);
  EXPECT_NE(last.result().failure().find(std::to_string(first_unknown)), std::string::npos);
  ASSERT_EQ(last.result().errors_size(), 1);
  EXPECT_EQ(last.result().errors(0).global_position(), first_unknown);
  EXPECT_EQ(last.result().events_processed(), first_unknown - 1);
  EXPECT_EQ(last.result().events_skipped(), 0u);
  // A failed rebuild leaves the projection unreadable until it is rebuilt.
  grpc::Status status = SummaryStatus(report_.account_ids[0]);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("needs a rebuild"), std::string::npos);
}

TEST_F(RebuildPolicyTest, FailOnHandlerErrorsStopsAtTheBrokenEvent) {
  v1::RebuildProgress last = RunWith(v1::SKIP, v1::FAIL);
  EXPECT_EQ(last.phase(), v1::FAILED);
  EXPECT_EQ(last.result().events_skipped(), 4u);  // The unknown events before it.
  ASSERT_EQ(last.result().errors_size(), 1);
  EXPECT_EQ(last.result().errors(0).global_position(), orphan_position_);
  EXPECT_NE(last.result().failure().find(std::to_string(orphan_position_)), std::string::npos);
  // Running it again with SKIP fixes the projection.
  EXPECT_EQ(RunWith(v1::SKIP, v1::SKIP).phase(), v1::DONE);
  EXPECT_TRUE(SummaryStatus(report_.account_ids[0]).ok());
}

TEST_F(RebuildPolicyTest, BadRequestsAreRejectedBeforeAnythingIsTruncated) {
  grpc::Status status;
  Rebuild(Request("NoSuchProjection"), &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::RebuildProjectionRequest request = Request("AccountSummary");
  request.set_batch_size(-1);
  Rebuild(request, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "batch_size");
  request.set_batch_size(10'000'000);
  Rebuild(request, &status);
  EXPECT_EQ(ViolatedField(status), "batch_size");
  request.set_batch_size(0);
  request.set_unknown_event_policy(static_cast<v1::EventPolicy>(42));
  Rebuild(request, &status);
  EXPECT_EQ(ViolatedField(status), "unknown_event_policy");
  EXPECT_TRUE(SummaryStatus(report_.account_ids[0]).ok());
}

TEST_F(RebuildTest, AProjectionAheadOfTheLogIsRefusedUntilRebuilt) {
  server::SeedOptions seed;
  seed.accounts = 20;
  seed.events = 400;
  SeedData(seed, dir_.Sub("data"));
  StartServer();
  WaitForProjections();
  StopServer();
  // The log is replaced by a shorter one (as after a machine crash with --sync_writes=false,
  // or a restore from an older copy); the projections, in their own directory, stay.
  for (const auto& entry : std::filesystem::directory_iterator(dir_.Sub("data"))) {
    if (entry.path().filename() != storage::kProjectionsDirectory) {
      std::filesystem::remove_all(entry.path());
    }
  }
  seed.seed = 99;
  seed.events = 100;
  server::SeedReport shorter = SeedData(seed, dir_.Sub("data"));
  StartServer();
  grpc::Status refused = SummaryStatus(shorter.account_ids[0]);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(refused.error_message().find("but the log ends at 100"), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(Rebuild(Request("AccountSummary")).back().phase(), v1::DONE);
  EXPECT_TRUE(SummaryStatus(shorter.account_ids[0]).ok());
}

class SlowRebuildTest : public RebuildTest {
 protected:
  void SetUp() override { report_ = StartOnSeed(100, 40000); }

  // A rebuild slowed to ~10,000 events per second, so it is still running when the test acts.
  static v1::RebuildProjectionRequest Slow() {
    v1::RebuildProjectionRequest request = Request("AccountSummary");
    request.set_batch_size(500);
    request.set_max_events_per_second(10000);
    return request;
  }

  server::SeedReport report_;
};

// The yield (--rebuild_yield): after each batch a rebuild pauses, up to yield_max, while an
// append waits for the log writer. Here an append's callback holds the writer for the whole
// test, so a second append is always waiting behind it.
class RebuildYieldTest : public RebuildTest {
 protected:
  static constexpr absl::Duration kYieldMax = absl::Milliseconds(400);
  void Configure(server::ServerOptions& options) override {
    RebuildTest::Configure(options);
    options.rebuild_tuning.yield_max = kYieldMax;
  }
  void SetUp() override { StartOnSeed(5, 60); }
};

TEST_F(RebuildYieldTest, ARebuildPausesAfterEachBatchWhileAnAppendWaits) {
  // Shared with the writer's callback, which may still be leaving release's wait when the
  // test body ends.
  struct Gate {
    absl::Notification held, release;
  };
  auto gate = std::make_shared<Gate>();
  const auto released = absl::MakeCleanup([gate] { gate->release.Notify(); });
  storage::AppendRequest append;
  append.streams.emplace_back();
  append.streams[0].stream_id = "Yield-1";
  append.streams[0].events.push_back({"YieldTestEvent", 1, 1, "", {}});
  server_->event_store()->AppendAsync(std::move(append),
                                      [gate](const absl::StatusOr<storage::AppendResult>& result) {
                                        EXPECT_OK(result);
                                        gate->held.Notify();
                                        gate->release.WaitForNotification();
                                      });
  gate->held.WaitForNotification();
  storage::AppendRequest waiting;
  waiting.streams.emplace_back();
  waiting.streams[0].stream_id = "Yield-2";
  waiting.streams[0].events.push_back({"YieldTestEvent", 1, 1, "", {}});
  server_->event_store()->AppendAsync(
      std::move(waiting),
      [](const absl::StatusOr<storage::AppendResult>& result) { EXPECT_OK(result); });
  ASSERT_GT(server_->event_store()->PendingAppends(), 0u);

  // 61 events in batches of 10: at least five pauses after full batches.
  v1::RebuildProjectionRequest request = Request("AccountSummary");
  request.set_batch_size(10);
  request.set_unknown_event_policy(v1::SKIP);
  // At idle priority the rebuild's thread waits for a core whenever the machine is busy (CI
  // runs other tests beside this one), which would add to both timings below.
  request.set_no_idle_priority(true);
  absl::Time start = absl::Now();
  EXPECT_EQ(Rebuild(request).back().phase(), v1::DONE);
  EXPECT_GE(absl::Now() - start, 5 * kYieldMax);

  request.set_no_yield(true);
  start = absl::Now();
  EXPECT_EQ(Rebuild(request).back().phase(), v1::DONE);
  EXPECT_LT(absl::Now() - start, 5 * kYieldMax);
}

TEST_F(SlowRebuildTest, CancellingMidReplayLeavesTheProjectionMarkedEvenAcrossARestart) {
  grpc::ClientContext context;
  auto reader = admin_->RebuildProjection(&context, Slow());
  v1::RebuildProgress progress;
  while (reader->Read(&progress) &&
         !(progress.phase() == v1::REPLAYING && progress.events_processed() > 0)) {
  }
  ASSERT_EQ(progress.phase(), v1::REPLAYING);
  const std::string id = progress.rebuild_id();

  // While it runs: queries say who is rebuilding, and a second rebuild is refused.
  grpc::Status during = SummaryStatus(report_.account_ids[0]);
  EXPECT_EQ(during.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(during.error_message().find(id), std::string::npos);
  grpc::Status second;
  Rebuild(Request("AccountSummary"), &second);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(second.error_message().find(id), std::string::npos);

  v1::CancelRebuildRequest cancel;
  cancel.set_rebuild_id(id);
  v1::RebuildInfo info;
  ASSERT_TRUE(admin_->CancelRebuild(Ctx().get(), cancel, &info).ok());
  EXPECT_EQ(info.progress().phase(), v1::CANCELLED);
  EXPECT_LT(info.progress().events_processed(), 40000u);
  while (reader->Read(&progress)) {
  }
  EXPECT_EQ(progress.phase(), v1::CANCELLED);
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(admin_->CancelRebuild(Ctx().get(), cancel, &info).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  grpc::Status after = SummaryStatus(report_.account_ids[0]);
  EXPECT_EQ(after.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(after.error_message().find("needs a rebuild"), std::string::npos);
  RestartServer();
  EXPECT_EQ(SummaryStatus(report_.account_ids[0]).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Rebuild(Request("AccountSummary")).back().phase(), v1::DONE);
  EXPECT_TRUE(SummaryStatus(report_.account_ids[0]).ok());
}

// The scheduling class and niceness of this process's threads whose name starts with `name`
// (Linux keeps 15 bytes of a thread's name).
struct ThreadPriority {
  int policy;
  int nice;
};
std::vector<ThreadPriority> PrioritiesOf(const std::string& name) {
  std::vector<ThreadPriority> found;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string line;
    if (!std::getline(comm, line) || line.rfind(name, 0) != 0) continue;
    const pid_t tid = std::stoi(task.path().filename().string());
    errno = 0;
    const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
    if (errno != 0) continue;  // The thread ended meanwhile.
    found.push_back({sched_getscheduler(tid), nice});
  }
  return found;
}

TEST_F(SlowRebuildTest, RebuildThreadsRunAtTheirPriorityAndLiveThreadsDoNot) {
  // The server's defaults (--rebuild_nice, 10, under SCHED_IDLE), then a request's own
  // niceness under the normal policy.
  for (uint32_t nice : {0u, 7u}) {
    SCOPED_TRACE(nice);
    v1::RebuildProjectionRequest request = Slow();
    request.set_nice(nice);
    request.set_no_idle_priority(nice != 0);
    grpc::ClientContext context;
    auto reader = admin_->RebuildProjection(&context, request);
    v1::RebuildProgress progress;
    while (reader->Read(&progress) &&
           !(progress.phase() == v1::REPLAYING && progress.events_processed() > 0)) {
    }
    ASSERT_EQ(progress.phase(), v1::REPLAYING);
    const int expected = nice == 0 ? server::RebuildTuning().nice : static_cast<int>(nice);
    // The job's thread applies; the replay's second thread reads.
    for (const char* name : {"rebuild Account", "replay-read"}) {
      std::vector<ThreadPriority> threads = PrioritiesOf(name);
      ASSERT_EQ(threads.size(), 1u) << name;
      EXPECT_EQ(threads[0].policy, nice == 0 ? SCHED_IDLE : SCHED_OTHER) << name;
      EXPECT_EQ(threads[0].nice, expected) << name;
    }
    std::vector<ThreadPriority> live = PrioritiesOf("proj ");
    EXPECT_GE(live.size(), 3u);
    for (ThreadPriority thread : live) {
      EXPECT_EQ(thread.nice, 0);
      EXPECT_EQ(thread.policy, SCHED_OTHER);
    }
    std::vector<ThreadPriority> writer = PrioritiesOf("fidelis-log");
    ASSERT_EQ(writer.size(), 1u);
    EXPECT_EQ(writer[0].nice, 0);
    EXPECT_EQ(writer[0].policy, SCHED_OTHER);

    v1::CancelRebuildRequest cancel;
    cancel.set_rebuild_id(progress.rebuild_id());
    v1::RebuildInfo info;
    ASSERT_TRUE(admin_->CancelRebuild(Ctx().get(), cancel, &info).ok());
    while (reader->Read(&progress)) {
    }
    EXPECT_TRUE(reader->Finish().ok());
  }
}

TEST_F(SlowRebuildTest, TheRebuildOutlivesItsCallerAndWatchReattaches) {
  std::string id;
  {
    grpc::ClientContext context;
    auto reader = admin_->RebuildProjection(&context, Slow());
    v1::RebuildProgress progress;
    ASSERT_TRUE(reader->Read(&progress));
    id = progress.rebuild_id();
    context.TryCancel();  // The caller goes away mid-replay.
    while (reader->Read(&progress)) {
    }
    reader->Finish();
  }
  v1::GetRebuildRequest get;
  get.set_rebuild_id(id);
  v1::RebuildInfo info;
  ASSERT_TRUE(admin_->GetRebuild(Ctx().get(), get, &info).ok());
  EXPECT_FALSE(info.progress().has_result());  // Still running.

  grpc::ClientContext context;
  v1::WatchRebuildRequest watch;
  watch.set_rebuild_id(id);
  auto reader = admin_->WatchRebuild(&context, watch);
  v1::RebuildProgress progress;
  int messages = 0;
  while (reader->Read(&progress)) ++messages;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_GT(messages, 3);
  EXPECT_EQ(progress.phase(), v1::DONE);
  EXPECT_TRUE(progress.result().success());
  EXPECT_EQ(progress.result().events_processed(), 40000u);

  v1::ListRebuildsResponse list;
  ASSERT_TRUE(admin_->ListRebuilds(Ctx().get(), {}, &list).ok());
  ASSERT_GE(list.rebuilds_size(), 1);
  EXPECT_EQ(list.rebuilds(0).rebuild_id(), id);
  EXPECT_EQ(list.rebuilds(0).progress().phase(), v1::DONE);
  watch.set_rebuild_id("rb-unknown");
  grpc::ClientContext unknown_context;
  auto unknown = admin_->WatchRebuild(&unknown_context, watch);
  while (unknown->Read(&progress)) {
  }
  EXPECT_EQ(unknown->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SlowRebuildTest, EventsAppendedDuringARebuildAreAppliedExactlyOnce) {
  std::vector<std::string> ids(report_.account_ids.begin(), report_.account_ids.begin() + 5);
  std::map<std::string, int64_t> base_balance, base_count;
  for (const auto& id : ids) {
    v1::AccountSummary s = Summary(id, Head());
    base_balance[id] = s.balance().minor_units();
    base_count[id] = s.transaction_count();
  }
  std::atomic<bool> stop{false};
  std::map<std::string, int> deposits;
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      v1::CommandResult result;
      if (Deposit(ids[i % ids.size()], 7, &result).ok()) ++deposits[ids[i % ids.size()]];
      absl::SleepFor(absl::Milliseconds(2));
    }
  });
  auto messages = Rebuild(Slow());
  stop.store(true);
  writer.join();
  ASSERT_EQ(messages.back().phase(), v1::DONE);
  EXPECT_GT(messages.back().events_total(), 40000u);  // Events arrived during the rebuild.
  for (const auto& id : ids) {
    v1::AccountSummary s = Summary(id, Head());
    EXPECT_EQ(s.balance().minor_units(), base_balance[id] + int64_t{7} * deposits[id]) << id;
    EXPECT_EQ(s.transaction_count(), base_count[id] + deposits[id]) << id;
  }
}

}  // namespace
}  // namespace fidelis::testing
