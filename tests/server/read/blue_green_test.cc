// Blue-green rebuilds over real gRPC against a real server on RocksDB: promote during a stream
// of commands with monotonic reads, abort at each phase, no-promote with explicit version
// reads, rollback, and resuming after a restart from the shadow's checkpoint.
#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "fidelis/v1/projections.pb.h"
#include "server/seed/seeder.h"
#include "storage/key_format.h"
#include "storage/rocksdb_event_store.h"
#include "tests/server/pause_at_phase.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

class BlueGreenTest : public ServerTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    options.sync_writes = false;
    options.initial_projection_versions["AccountReport"] = 1;
    options.rebuild_observer = &pause_;
    options.rebuild_tuning.durable_interval = absl::Milliseconds(200);
  }
  void SetUp() override {}

  void SeedAndStart(int events) {
    {
      auto db = storage::Database::Open(dir_.Sub("data"), {});
      ASSERT_OK(db);
      auto store = storage::RocksDbEventStore::Open(db->get());
      ASSERT_OK(store);
      server::SeedOptions seed;
      seed.seed = 11;
      seed.accounts = 200;
      seed.events = events;
      seed.close_fraction = 0;
      auto report = server::Seed(**store, seed);
      ASSERT_OK(report);
      ids_ = report->account_ids;
    }
    StartServer();
    for (const auto& runner : LiveBuilds()) {
      ASSERT_OK(runner->WaitFor(Head(), absl::Now() + absl::Seconds(60)));
    }
  }

  static v1::RebuildProjectionRequest BlueGreen(const std::string& projection) {
    v1::RebuildProjectionRequest request;
    request.set_projection(projection);
    request.set_mode(v1::BLUE_GREEN);
    return request;
  }

  // Runs a rebuild to its end (or until `stop_at` is seen) and returns every message.
  std::vector<v1::RebuildProgress> Rebuild(const v1::RebuildProjectionRequest& request,
                                           v1::RebuildPhase stop_at = v1::PHASE_UNSPECIFIED) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
    auto reader = admin_->RebuildProjection(&context, request);
    std::vector<v1::RebuildProgress> messages;
    v1::RebuildProgress progress;
    while (reader->Read(&progress)) {
      messages.push_back(progress);
      if (progress.phase() == stop_at) {
        context.TryCancel();
        break;
      }
    }
    reader->Finish();
    return messages;
  }

  v1::ProjectionInfo Info(const std::string& name) {
    v1::ListProjectionsResponse list;
    EXPECT_TRUE(admin_->ListProjections(Ctx().get(), {}, &list).ok());
    for (const auto& p : list.projections()) {
      if (p.name() == name) return p;
    }
    ADD_FAILURE() << name;
    return {};
  }

  // Every row of a projection's live build, through the query API.
  std::map<std::string, std::string> AllSummaries() {
    std::map<std::string, std::string> rows;
    v1::ListAccountSummariesRequest request;
    request.set_page_size(1000);
    request.set_min_global_position(Head());
    do {
      v1::ListAccountSummariesResponse page;
      grpc::Status status = queries_->ListAccountSummaries(Ctx().get(), request, &page);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      for (const auto& s : page.accounts()) rows[s.account_id()] = s.SerializeAsString();
      request.set_page_token(page.next_page_token());
    } while (!request.page_token().empty());
    return rows;
  }

  grpc::Status Report(const std::string& id, uint32_t version, v1::AccountReport* report,
                      std::string* build = nullptr) {
    v1::GetAccountReportRequest request;
    request.set_account_id(id);
    request.set_projection_version(version);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::Status status = queries_->GetAccountReport(&context, request, report);
    if (build != nullptr) {
      auto it = context.GetServerTrailingMetadata().find("fidelis-projection-build");
      *build = it == context.GetServerTrailingMetadata().end()
                   ? ""
                   : std::string(it->second.data(), it->second.size());
    }
    return status;
  }

  v1::DiffProjectionResponse DiffLiveAndPrevious(const std::string& projection) {
    v1::DiffProjectionRequest diff;
    diff.set_projection(projection);
    diff.set_a("live");
    diff.set_b("previous");
    v1::DiffProjectionResponse differences;
    grpc::Status status = admin_->DiffProjection(Ctx().get(), diff, &differences);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return differences;
  }

  bool FamilyExists(const std::string& family) {
    const std::vector<std::string> names = FamilyNames();
    return std::find(names.begin(), names.end(), family) != names.end();
  }
  std::vector<std::string> FamilyNames() {
    std::vector<std::string> names;
    rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir_.Sub("data"), &names);
    return names;
  }

  PauseAtPhase pause_;
  std::vector<std::string> ids_;
};

TEST_F(BlueGreenTest, PromoteDuringCommandsNeverGoesBackAndEqualsAFullReplay) {
  SeedAndStart(20000);
  std::atomic<bool> stop{false};
  std::atomic<int> deposits{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      v1::CommandResult result;
      if (Deposit(ids_[i % ids_.size()], 1 + i % 7, &result).ok()) deposits.fetch_add(1);
    }
  });
  // Readers: each query's checkpoint and row must be at least as new as the last they saw.
  std::atomic<int> regressions{0};
  std::atomic<int> queries{0};
  std::set<std::string> builds_seen;
  absl::Mutex builds_mu;
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      uint64_t last_checkpoint = 0;
      std::map<std::string, int64_t> last_count;
      for (int i = r; !stop.load(); ++i) {
        const std::string& id = ids_[i % 8];
        v1::GetAccountSummaryRequest request;
        request.set_account_id(id);
        grpc::ClientContext context;
        v1::AccountSummary summary;
        grpc::Status status = queries_->GetAccountSummary(&context, request, &summary);
        if (!status.ok()) {
          ADD_FAILURE() << status.error_message();  // The live build serves throughout.
          continue;
        }
        queries.fetch_add(1);
        const auto& trailers = context.GetServerTrailingMetadata();
        const auto build = trailers.find("fidelis-projection-build");
        const auto checkpoint = trailers.find("fidelis-projection-checkpoint");
        ASSERT_NE(build, trailers.end());
        ASSERT_NE(checkpoint, trailers.end());
        const uint64_t position =
            std::stoull(std::string(checkpoint->second.data(), checkpoint->second.size()));
        if (position < last_checkpoint) regressions.fetch_add(1);
        if (summary.transaction_count() < last_count[id]) regressions.fetch_add(1);
        last_checkpoint = std::max(last_checkpoint, position);
        last_count[id] = summary.transaction_count();
        absl::MutexLock lock(&builds_mu);
        builds_seen.insert(std::string(build->second.data(), build->second.size()));
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(300));
  v1::RebuildProjectionRequest request = BlueGreen("AccountSummary");
  request.set_max_events_per_second(20000);  // Long enough for queries on both sides.
  auto messages = Rebuild(request);
  ASSERT_FALSE(messages.empty());
  EXPECT_EQ(messages.back().phase(), v1::DONE) << messages.back().result().failure();
  EXPECT_EQ(messages.back().build(), "v1.1");
  absl::SleepFor(absl::Milliseconds(300));
  stop.store(true);
  writer.join();
  for (auto& t : readers) t.join();
  EXPECT_EQ(regressions.load(), 0);
  EXPECT_GT(deposits.load(), 0);
  EXPECT_GT(queries.load(), 0);
  EXPECT_EQ(builds_seen, (std::set<std::string>{"v1", "v1.1"}));

  // The promoted build equals the old one, which followed every event live...
  const v1::DiffProjectionResponse differences = DiffLiveAndPrevious("AccountSummary");
  EXPECT_EQ(differences.differing_rows(), 0u);
  EXPECT_EQ(differences.a().rows(), ids_.size());
  EXPECT_EQ(differences.checkpoint(), Head());
  // ...and a full replay of the log from scratch.
  const auto promoted = AllSummaries();
  v1::RebuildProjectionRequest in_place;
  in_place.set_projection("AccountSummary");
  in_place.set_mode(v1::IN_PLACE);
  EXPECT_EQ(Rebuild(in_place).back().phase(), v1::DONE);
  EXPECT_EQ(AllSummaries(), promoted);
}

TEST_F(BlueGreenTest, NoPromoteServesTheShadowOnRequestThenDiffAndPromote) {
  SeedAndStart(5000);
  v1::ProjectionInfo before = Info("AccountReport");
  EXPECT_EQ(before.version(), 1u);
  EXPECT_EQ(before.newest_version(), 2u);
  EXPECT_TRUE(before.rebuild_needed());

  v1::RebuildProjectionRequest request = BlueGreen("AccountReport");
  request.set_no_promote(true);
  auto messages = Rebuild(request);
  EXPECT_EQ(messages.back().phase(), v1::READY);
  EXPECT_TRUE(messages.back().result().success());

  v1::ProjectionInfo ready = Info("AccountReport");
  EXPECT_EQ(ready.version(), 1u);
  EXPECT_EQ(ready.shadow().build(), "v2");
  // The shadow keeps following new events.
  v1::CommandResult result;
  ASSERT_TRUE(Deposit(ids_[0], 123456, &result).ok());
  v1::GetAccountReportRequest follow;
  follow.set_account_id(ids_[0]);
  follow.set_projection_version(2);
  follow.set_min_global_position(result.global_position());
  v1::AccountReport shadow_row;
  ASSERT_TRUE(queries_->GetAccountReport(Ctx().get(), follow, &shadow_row).ok());
  EXPECT_EQ(shadow_row.largest_deposit(), 123456);
  EXPECT_GT(shadow_row.months_size(), 0);
  v1::AccountReport live_row;
  std::string build;
  ASSERT_TRUE(Report(ids_[0], 0, &live_row, &build).ok());
  EXPECT_EQ(build, "v1");
  EXPECT_EQ(live_row.months_size(), 0);
  EXPECT_EQ(Report(ids_[0], 3, &live_row).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::DiffProjectionRequest diff;
  diff.set_projection("AccountReport");
  diff.set_a("live");
  diff.set_b("shadow");
  diff.set_max_differences(3);
  v1::DiffProjectionResponse differences;
  ASSERT_TRUE(admin_->DiffProjection(Ctx().get(), diff, &differences).ok());
  EXPECT_EQ(differences.a().build(), "v1");
  EXPECT_EQ(differences.b().build(), "v2");
  EXPECT_EQ(differences.a().rows(), differences.b().rows());
  EXPECT_EQ(differences.differing_rows(), differences.a().rows());
  ASSERT_EQ(differences.differences_size(), 3);
  EXPECT_NE(differences.differences(0).fields().find("months"), std::string::npos);
  EXPECT_EQ(differences.differences(0).fields().find("total_deposits"), std::string::npos)
      << "v2 keeps v1's fields as they are";

  v1::PromoteProjectionRequest promote;
  promote.set_projection("AccountReport");
  v1::ProjectionInfo promoted;
  ASSERT_TRUE(admin_->PromoteProjection(Ctx().get(), promote, &promoted).ok());
  EXPECT_EQ(promoted.version(), 2u);
  EXPECT_FALSE(promoted.rebuild_needed());
  EXPECT_EQ(promoted.previous().build(), "v1");
  EXPECT_FALSE(promoted.has_shadow());
  ASSERT_TRUE(Report(ids_[0], 0, &live_row, &build).ok());
  EXPECT_EQ(build, "v2");
  EXPECT_EQ(live_row.largest_deposit(), 123456);
  // Promoting again has nothing to promote.
  EXPECT_EQ(admin_->PromoteProjection(Ctx().get(), promote, &promoted).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(BlueGreenTest, RollbackSwapsBackAndSurvivesARestart) {
  SeedAndStart(3000);
  ASSERT_EQ(Rebuild(BlueGreen("AccountReport")).back().phase(), v1::DONE);
  EXPECT_EQ(Info("AccountReport").version(), 2u);
  v1::RollbackProjectionRequest rollback;
  rollback.set_projection("AccountReport");
  v1::ProjectionInfo info;
  ASSERT_TRUE(admin_->RollbackProjection(Ctx().get(), rollback, &info).ok());
  EXPECT_EQ(info.version(), 1u);
  EXPECT_EQ(info.previous().build(), "v2");
  v1::AccountReport row;
  std::string build;
  ASSERT_TRUE(Report(ids_[1], 0, &row, &build).ok());
  EXPECT_EQ(build, "v1");
  EXPECT_EQ(row.months_size(), 0);
  // The previous build is still served on request, and never ahead of the live one.
  ASSERT_TRUE(Report(ids_[1], 2, &row, &build).ok());
  EXPECT_EQ(build, "v2");
  EXPECT_GT(row.months_size(), 0);

  RestartServer();
  info = Info("AccountReport");
  EXPECT_EQ(info.version(), 1u);
  EXPECT_EQ(info.previous().build(), "v2");
  v1::RetireProjectionRequest retire;
  retire.set_projection("AccountReport");
  ASSERT_TRUE(admin_->RetireProjection(Ctx().get(), retire, &info).ok());
  EXPECT_FALSE(info.has_previous());
  EXPECT_EQ(admin_->RollbackProjection(Ctx().get(), rollback, &info).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  StopServer();
  EXPECT_FALSE(FamilyExists(storage::ProjectionFamily("AccountReport", 2)));
}

class BlueGreenAbortTest : public BlueGreenTest,
                           public ::testing::WithParamInterface<v1::RebuildPhase> {};

TEST_P(BlueGreenAbortTest, AbortDropsTheShadowAndLeavesTheLiveBuildUntouched) {
  const v1::RebuildPhase phase = GetParam();
  if (phase != v1::READY) pause_.Set(phase);
  SeedAndStart(3000);
  v1::AccountReport before;
  ASSERT_TRUE(Report(ids_[2], 0, &before).ok());
  v1::RebuildProjectionRequest request = BlueGreen("AccountReport");
  request.set_no_promote(phase == v1::READY);
  auto messages = Rebuild(request, phase);
  ASSERT_EQ(messages.back().phase(), phase);
  const std::string id = messages.back().rebuild_id();
  EXPECT_EQ(Info("AccountReport").shadow().build(), "v2");

  v1::AbortRebuildRequest abort;
  abort.set_projection("AccountReport");
  v1::ProjectionInfo info;
  grpc::Status aborted = admin_->AbortRebuild(Ctx().get(), abort, &info);
  ASSERT_TRUE(aborted.ok()) << aborted.error_message();
  EXPECT_FALSE(info.has_shadow());
  EXPECT_EQ(info.version(), 1u);
  EXPECT_EQ(info.state(), "live");
  v1::AccountReport after;
  ASSERT_TRUE(Report(ids_[2], 0, &after).ok());
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
  if (phase != v1::READY) {
    v1::GetRebuildRequest get;
    get.set_rebuild_id(id);
    v1::RebuildInfo rebuild;
    ASSERT_TRUE(admin_->GetRebuild(Ctx().get(), get, &rebuild).ok());
    EXPECT_EQ(rebuild.progress().phase(), v1::CANCELLED);
  }
  // Nothing is left to resume or to abort.
  EXPECT_EQ(admin_->AbortRebuild(Ctx().get(), abort, &info).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  StopServer();
  EXPECT_FALSE(FamilyExists(storage::ProjectionFamily("AccountReport", 2)));
}

INSTANTIATE_TEST_SUITE_P(EachPhase, BlueGreenAbortTest,
                         ::testing::Values(v1::REPLAYING, v1::CATCHING_UP, v1::PROMOTING,
                                           v1::READY),
                         [](const auto& info) { return v1::RebuildPhase_Name(info.param); });

TEST_F(BlueGreenTest, AJobInterruptedByAShutdownResumesFromItsShadowCheckpoint) {
  SeedAndStart(30000);
  v1::RebuildProjectionRequest request = BlueGreen("AccountSummary");
  request.set_max_events_per_second(10000);
  request.set_batch_size(500);
  // Stop watching once the replay is well along and a durable point has passed.
  std::string id;
  {
    grpc::ClientContext context;
    auto reader = admin_->RebuildProjection(&context, request);
    v1::RebuildProgress progress;
    while (reader->Read(&progress)) {
      if (progress.phase() == v1::REPLAYING && progress.events_processed() >= 8000) break;
    }
    id = progress.rebuild_id();
    context.TryCancel();
    reader->Finish();
  }
  RestartServer();  // Without pausing: the job goes on from where its shadow got.
  v1::ListRebuildsResponse list;
  ASSERT_TRUE(admin_->ListRebuilds(Ctx().get(), {}, &list).ok());
  ASSERT_EQ(list.rebuilds_size(), 1);
  EXPECT_EQ(list.rebuilds(0).rebuild_id(), id);
  EXPECT_TRUE(list.rebuilds(0).resumed());
  // The live build answers while the resumed job runs.
  EXPECT_EQ(AllSummaries().size(), ids_.size());
  v1::WatchRebuildRequest watch;
  watch.set_rebuild_id(id);
  grpc::ClientContext context;
  auto reader = admin_->WatchRebuild(&context, watch);
  v1::RebuildProgress first, last;
  ASSERT_TRUE(reader->Read(&first));
  last = first;
  while (reader->Read(&last)) {
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_GE(first.events_processed(), 4000u) << "resumed from its checkpoint, not from zero";
  EXPECT_EQ(last.phase(), v1::DONE) << last.result().failure();
  const v1::DiffProjectionResponse differences = DiffLiveAndPrevious("AccountSummary");
  EXPECT_EQ(differences.a().build(), "v1.1");
  EXPECT_EQ(differences.differing_rows(), 0u);
}

TEST_F(BlueGreenTest, BadBlueGreenRequestsNameTheFieldAndChangeNothing) {
  SeedAndStart(500);
  grpc::Status status;
  auto call = [&](const v1::RebuildProjectionRequest& request) {
    grpc::ClientContext context;
    auto reader = admin_->RebuildProjection(&context, request);
    v1::RebuildProgress progress;
    while (reader->Read(&progress)) {
    }
    return reader->Finish();
  };
  v1::RebuildProjectionRequest request = BlueGreen("AccountReport");
  request.set_target_version(9);
  status = call(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "target_version");
  request = BlueGreen("AccountReport");
  request.set_nice(40);
  EXPECT_EQ(ViolatedField(call(request)), "nice");
  request = BlueGreen("AccountReport");
  request.set_mode(static_cast<v1::RebuildMode>(7));
  EXPECT_EQ(ViolatedField(call(request)), "mode");
  request.set_mode(v1::IN_PLACE);
  request.set_target_version(2);
  EXPECT_EQ(ViolatedField(call(request)), "target_version");

  v1::DiffProjectionRequest diff;
  diff.set_projection("AccountReport");
  diff.set_a("live");
  diff.set_b("shadow");
  v1::DiffProjectionResponse differences;
  status = admin_->DiffProjection(Ctx().get(), diff, &differences);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ViolatedField(status), "b");
  diff.set_b("live");
  EXPECT_EQ(ViolatedField(admin_->DiffProjection(Ctx().get(), diff, &differences)), "b");
  diff.set_a("v1.x");
  EXPECT_EQ(ViolatedField(admin_->DiffProjection(Ctx().get(), diff, &differences)), "a");
  diff.set_projection("Nope");
  EXPECT_EQ(admin_->DiffProjection(Ctx().get(), diff, &differences).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::PromoteProjectionRequest promote;
  promote.set_projection("AccountReport");
  v1::ProjectionInfo info;
  EXPECT_EQ(admin_->PromoteProjection(Ctx().get(), promote, &info).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Info("AccountReport").version(), 1u);
  EXPECT_FALSE(Info("AccountReport").has_shadow());
}

}  // namespace
}  // namespace fidelis::testing
