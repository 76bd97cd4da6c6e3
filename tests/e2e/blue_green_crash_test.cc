// End to end: SIGKILL of the real fidelisd during a blue-green rebuild (mid-replay, during
// catch-up, and right before the promote). After the restart the job resumes from its
// shadow's checkpoint and completes, the live build answers throughout with its data intact,
// and the final data equals a replay of the whole log.
#include <cstdlib>
#include <map>

#include "fidelis/v1/accounts.grpc.pb.h"
#include "fidelis/v1/admin.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace fidelis::testing {
namespace {

// fidelisd with the hook that holds a rebuild at a phase (fidelisd_harness_main.cc).
const std::string kServer = FIDELISD_HARNESS_PATH;
const std::string kSeed = FIDELIS_SEED_PATH;

class BlueGreenCrashTest : public ::testing::TestWithParam<v1::RebuildPhase> {
 protected:
  void SetUp() override {
    RunResult seeded = testing::Run({kSeed, "--data_dir=" + dir_.Sub("data"), "--seed=9",
                                     "--accounts=300", "--events=40000", "--close_fraction=0"});
    ASSERT_EQ(seeded.exit_code, 0) << seeded.output;
  }

  // Starts the server; with `pause_at`, rebuild jobs stop at that phase.
  void Start(const std::string& pause_at) {
    server_ = std::make_unique<Child>(std::vector<std::string>{
        kServer, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
        "--data_dir=" + dir_.Sub("data"), "--log_level=error",
        "--rebuild_checkpoint_interval=200ms", "--pause_rebuild_at=" + pause_at});
    const std::string line = server_->ReadLine();
    ASSERT_EQ(line.rfind("listening on ", 0), 0u) << line;
    auto channel = grpc::CreateChannel(line.substr(13), grpc::InsecureChannelCredentials());
    queries_ = v1::AccountQueries::NewStub(channel);
    admin_ = v1::ProjectionAdmin::NewStub(channel);
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 30) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return context;
  }

  // Every AccountSummary row of the live build, once it has applied the whole log.
  std::map<std::string, std::string> Summaries() {
    std::map<std::string, std::string> rows;
    v1::ListAccountSummariesRequest request;
    request.set_page_size(1000);
    request.set_min_global_position(40000);
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

  // Reads a rebuild's stream until `done` says so; returns the last message.
  template <typename Reader, typename Done>
  static v1::RebuildProgress ReadUntil(Reader& reader, Done done) {
    v1::RebuildProgress progress;
    while (reader->Read(&progress) && !done(progress)) {
    }
    return progress;
  }

  TempDir dir_;
  std::unique_ptr<Child> server_;
  std::unique_ptr<v1::AccountQueries::Stub> queries_;
  std::unique_ptr<v1::ProjectionAdmin::Stub> admin_;
};

TEST_P(BlueGreenCrashTest, SigkillResumesTheJobAndNeverDamagesTheLiveBuild) {
  const v1::RebuildPhase phase = GetParam();
  // Mid-replay is reached by slowing the replay down; the other points by the pause hook.
  Start(phase == v1::REPLAYING ? "" : v1::RebuildPhase_Name(phase));
  const std::map<std::string, std::string> truth = Summaries();
  ASSERT_EQ(truth.size(), 300u);

  v1::RebuildProjectionRequest request;
  request.set_projection("AccountSummary");
  request.set_mode(v1::BLUE_GREEN);
  request.set_batch_size(500);
  if (phase == v1::REPLAYING) request.set_max_events_per_second(10000);
  grpc::ClientContext context;
  auto reader = admin_->RebuildProjection(&context, request);
  const v1::RebuildProgress reached = ReadUntil(reader, [&](const v1::RebuildProgress& p) {
    return p.phase() == phase && (phase != v1::REPLAYING || p.events_processed() >= 15000);
  });
  ASSERT_EQ(reached.phase(), phase) << reached.ShortDebugString();
  EXPECT_EQ(Summaries(), truth);  // The live build serves while the shadow is built.
  server_->Signal(SIGKILL);
  server_->Wait();
  context.TryCancel();
  reader.reset();

  Start("");
  EXPECT_EQ(Summaries(), truth) << "the live build answers at once, undamaged";
  v1::ListRebuildsResponse list;
  ASSERT_TRUE(admin_->ListRebuilds(Ctx().get(), {}, &list).ok());
  ASSERT_EQ(list.rebuilds_size(), 1);
  EXPECT_EQ(list.rebuilds(0).rebuild_id(), reached.rebuild_id());
  EXPECT_TRUE(list.rebuilds(0).resumed());
  v1::WatchRebuildRequest watch;
  watch.set_rebuild_id(reached.rebuild_id());
  grpc::ClientContext watch_context;
  auto watcher = admin_->WatchRebuild(&watch_context, watch);
  v1::RebuildProgress first;
  ASSERT_TRUE(watcher->Read(&first));
  if (phase == v1::REPLAYING) {
    EXPECT_GT(first.events_processed(), 0u) << "resumed from the shadow's checkpoint";
  }
  const v1::RebuildProgress last =
      ReadUntil(watcher, [](const v1::RebuildProgress& p) { return p.has_result(); });
  EXPECT_EQ(last.phase(), v1::DONE) << last.result().failure();
  EXPECT_EQ(last.build(), "v1.1");

  v1::ListProjectionsResponse projections;
  ASSERT_TRUE(admin_->ListProjections(Ctx().get(), {}, &projections).ok());
  for (const auto& p : projections.projections()) {
    if (p.name() != "AccountSummary") continue;
    EXPECT_EQ(p.live().build(), "v1.1");
    EXPECT_EQ(p.previous().build(), "v1");
    EXPECT_FALSE(p.has_shadow());
  }
  EXPECT_EQ(Summaries(), truth) << "the promoted build equals the live one";
  // And a replay of the whole log from scratch gives the same rows.
  v1::RebuildProjectionRequest in_place;
  in_place.set_projection("AccountSummary");
  in_place.set_mode(v1::IN_PLACE);
  grpc::ClientContext in_place_context;
  auto replay = admin_->RebuildProjection(&in_place_context, in_place);
  EXPECT_EQ(ReadUntil(replay, [](const v1::RebuildProgress& p) { return p.has_result(); }).phase(),
            v1::DONE);
  EXPECT_EQ(Summaries(), truth);
}

INSTANTIATE_TEST_SUITE_P(AtEachPoint, BlueGreenCrashTest,
                         ::testing::Values(v1::REPLAYING, v1::CATCHING_UP, v1::PROMOTING),
                         [](const auto& info) { return v1::RebuildPhase_Name(info.param); });

}  // namespace
}  // namespace fidelis::testing
