// The event log over real gRPC: reading streams and the whole log, live subscriptions, and
// projections resuming after a restart.
#include <thread>

#include "fidelis/v1/events.pb.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

using EventLogServiceTest = ServerTest;

TEST_F(EventLogServiceTest, ReadStreamReturnsDecodedEventsInVersionOrder) {
  const std::string id = OpenOk("NL01", 100);
  v1::CommandResult result;
  ASSERT_TRUE(Deposit(id, 5, &result).ok());
  v1::ReadStreamRequest request;
  request.set_stream_id("Account-" + id);
  v1::ReadStreamResponse response;
  ASSERT_TRUE(log_->ReadStream(Ctx().get(), request, &response).ok());
  ASSERT_EQ(response.events_size(), 2);
  EXPECT_EQ(response.stream_version(), 2);
  const v1::RecordedEvent& deposit = response.events(1);
  EXPECT_EQ(deposit.type(), "DepositMade");
  EXPECT_EQ(deposit.schema_version(), 2u);
  EXPECT_EQ(deposit.category(), "Account");
  EXPECT_EQ(deposit.stream_version(), 2);
  EXPECT_EQ(deposit.global_position(), result.global_position());
  v1::DepositMade payload;
  ASSERT_TRUE(deposit.payload().UnpackTo(&payload));
  EXPECT_EQ(payload.amount().minor_units(), 5);
  EXPECT_GT(deposit.timestamp().seconds(), 0);

  request.set_stream_id("Account-nope");
  EXPECT_EQ(log_->ReadStream(Ctx().get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  request.set_stream_id("");
  EXPECT_EQ(log_->ReadStream(Ctx().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(EventLogServiceTest, ReadAllPagesByPosition) {
  for (int i = 0; i < 5; ++i) OpenOk("N" + std::to_string(i), 0);
  v1::ReadAllRequest request;
  request.set_from_position(3);
  request.set_max_count(4);
  v1::ReadAllResponse response;
  ASSERT_TRUE(log_->ReadAll(Ctx().get(), request, &response).ok());
  ASSERT_EQ(response.events_size(), 4);
  EXPECT_EQ(response.events(0).global_position(), 3u);
  EXPECT_EQ(response.events(3).global_position(), 6u);
  EXPECT_EQ(response.head_position(), 10u);
  request.set_max_count(5000);
  EXPECT_EQ(log_->ReadAll(Ctx().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(EventLogServiceTest, SubscribeAllCatchesUpThenFollowsLiveAppends) {
  const std::string id = OpenOk("NL01", 0);  // Positions 1 and 2.
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::SubscribeAllRequest request;
  request.set_from_position(1);
  auto reader = log_->SubscribeAll(&context, request);
  v1::RecordedEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.global_position(), 1u);
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.global_position(), 2u);
  std::thread writer([&] {
    for (int i = 0; i < 3; ++i) {
      v1::CommandResult result;
      absl::SleepFor(absl::Milliseconds(30));
      EXPECT_TRUE(Deposit(id, 1, &result).ok());
    }
  });
  for (uint64_t expected = 3; expected <= 5; ++expected) {
    ASSERT_TRUE(reader->Read(&event));
    EXPECT_EQ(event.global_position(), expected);
    EXPECT_EQ(event.type(), "DepositMade");
  }
  writer.join();
  context.TryCancel();
  reader->Finish();
}

TEST_F(EventLogServiceTest, ProjectionsResumeAfterARestartWithTheSameData) {
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(OpenOk("N" + std::to_string(i), 1000));
  v1::CommandResult result;
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(Withdraw(ids[i], int64_t{i} * 10, &result).ok() || i == 0);
  const uint64_t head = Head();
  std::vector<std::string> before;
  for (const auto& id : ids) before.push_back(Summary(id, head).SerializeAsString());
  v1::ListProjectionsResponse projections;
  ASSERT_TRUE(admin_->ListProjections(Ctx().get(), {}, &projections).ok());

  RestartServer();
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(Summary(ids[i], head).SerializeAsString(), before[i]);
  }
  // Applying more events after the restart continues from the checkpoint, not from zero.
  ASSERT_TRUE(Deposit(ids[3], 1, &result).ok());
  v1::AccountSummary after = Summary(ids[3], result.global_position());
  EXPECT_EQ(after.balance().minor_units(), 1000 - 30 + 1);
  EXPECT_EQ(after.transaction_count(), 3);
  ASSERT_TRUE(admin_->ListProjections(Ctx().get(), {}, &projections).ok());
  ASSERT_EQ(projections.projections_size(), 3);
  for (const auto& p : projections.projections()) {
    EXPECT_EQ(p.version(), p.newest_version());  // A new database starts at the newest.
    EXPECT_FALSE(p.rebuild_needed());
    EXPECT_EQ(p.head_position(), result.global_position());
  }
}

}  // namespace
}  // namespace fidelis::testing
