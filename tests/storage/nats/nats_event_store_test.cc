// NatsEventStore on a real nats-server: the EventStore contract suite (event_store_contract.h),
// and what two nodes on one stream must get right: an append decided on a stale replica is
// refused and decided again, positions stay gapless, command ids are global, and both
// replicas end identical; and a store opens, and stops, at once while NATS is down.
#include "storage/nats/nats_event_store.h"

#include <atomic>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nats/nats.h"
#include "tests/nats_cluster.h"
#include "tests/storage/event_store_contract.h"
#include "tests/test_util.h"

namespace fidelis::storage::nats {
namespace {

// One nats-server for the whole test process, started by the first test that needs it.
testing::NatsCluster& SharedServer() {
  static testing::NatsCluster* const cluster = new testing::NatsCluster(1);
  return *cluster;
}

class StopSharedServer : public ::testing::Environment {
 public:
  void TearDown() override { SharedServer().KillAll(); }
};

// Each store gets a stream of its own, so tests never see each other's events.
std::string UniqueStream() {
  static std::atomic<int> next{0};
  return absl::StrCat("T", getpid(), "_", next.fetch_add(1));
}

NatsEventStoreOptions Options(const std::string& stream, const testing::NatsCluster& cluster,
                              int replicas = 1) {
  NatsEventStoreOptions options;
  options.jetstream.servers = cluster.url_list();
  options.jetstream.stream = stream;
  options.jetstream.subject = absl::StrCat("fidelis.", stream);
  options.jetstream.replicas = replicas;
  return options;
}

// A node: a replica directory and a store on the stream.
class Node {
 public:
  explicit Node(NatsEventStoreOptions options) : options_(std::move(options)) { Open(); }
  void Open() {
    db_ = std::move(Database::Open(dir_.path(), {})).value();
    store_ = std::move(NatsEventStore::Open(db_.get(), options_)).value();
    EXPECT_TRUE(store_->WaitUntilReady(absl::Seconds(30))) << "the replica did not catch up";
  }
  void Close() {
    store_.reset();
    db_.reset();
  }
  NatsEventStore* store() { return store_.get(); }

 private:
  const NatsEventStoreOptions options_;
  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<NatsEventStore> store_;
};

class NatsHarness : public EventStoreHarness {
 public:
  NatsHarness() : node_(Options(UniqueStream(), SharedServer())) {}
  EventStore* store() override { return node_.store(); }
  void Close() override { node_.Close(); }
  void Open() override { node_.Open(); }

 private:
  Node node_;
};

std::unique_ptr<EventStoreHarness> MakeNatsHarness() {
  static ::testing::Environment* const stop =
      ::testing::AddGlobalTestEnvironment(new StopSharedServer);
  (void)stop;
  return std::make_unique<NatsHarness>();
}

INSTANTIATE_TEST_SUITE_P(NatsJetStream, EventStoreContractTest, ::testing::Values(&MakeNatsHarness),
                         [](const auto&) { return std::string("OneServer"); });

class TwoNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static ::testing::Environment* const stop =
        ::testing::AddGlobalTestEnvironment(new StopSharedServer);
    (void)stop;
    const std::string stream = UniqueStream();
    a_ = std::make_unique<Node>(Options(stream, SharedServer()));
    b_ = std::make_unique<Node>(Options(stream, SharedServer()));
  }

  std::unique_ptr<Node> a_, b_;
};

TEST_F(TwoNodesTest, AnAppendDecidedOnAStaleReplicaIsRefusedAndTheOtherNodeSeesIt) {
  ASSERT_OK(a_->store()->Append(OneStream("A-1", kExpectNoStream, 2)));
  // b has not necessarily applied a's batch yet, but its append is checked against it: the
  // expectation "no stream" no longer holds.
  auto conflict = b_->store()->Append(OneStream("A-1", kExpectNoStream));
  EXPECT_CODE(conflict, kAborted);
  EXPECT_EQ(std::string(*conflict.status().GetPayload(kCurrentVersionPayloadKey)), "2");
  auto next = b_->store()->Append(OneStream("A-1", 2));
  ASSERT_OK(next);
  EXPECT_EQ(next->first_position, 3u);
  ASSERT_OK(a_->store()->AwaitPosition(3, absl::Seconds(10)));
  EXPECT_EQ(*a_->store()->StreamVersion("A-1"), 3);
}

TEST_F(TwoNodesTest, ConcurrentWritersOnBothNodesKeepPositionsGaplessAndReplicasEqual) {
  constexpr int kPerThread = 60;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      NatsEventStore* store = t % 2 == 0 ? a_->store() : b_->store();
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_OK(store->Append(OneStream(absl::StrCat("S-", t % 3), kExpectAny)));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const uint64_t total = uint64_t{4} * kPerThread;
  for (Node* node : {a_.get(), b_.get()}) {
    ASSERT_OK(node->store()->AwaitPosition(total, absl::Seconds(20)));
    EXPECT_EQ(node->store()->HeadPosition(), total);
  }
  auto a_events = a_->store()->ReadAll(1, 1000);
  auto b_events = b_->store()->ReadAll(1, 1000);
  ASSERT_OK(a_events);
  ASSERT_OK(b_events);
  ASSERT_EQ(a_events->size(), total);
  std::map<std::string, int64_t> versions;
  for (size_t i = 0; i < a_events->size(); ++i) {
    EXPECT_EQ((*a_events)[i].global_position(), i + 1);
    EXPECT_EQ((*a_events)[i].stream_version(), ++versions[(*a_events)[i].stream_id()]);
    EXPECT_EQ((*a_events)[i].SerializeAsString(), (*b_events)[i].SerializeAsString());
  }
}

// Both nodes keep several publishes in flight on the same streams: each refusal (the other
// node got there first) refuses the publishes chained behind it, and all of them are decided
// again. Every append is stored once, in a gapless log that both replicas hold alike.
TEST_F(TwoNodesTest, PublishesRefusedInTheMiddleOfAChainAreAllDecidedAgain) {
  constexpr int kThreads = 16, kPerThread = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      NatsEventStore* store = t % 2 == 0 ? a_->store() : b_->store();
      for (int i = 0; i < kPerThread; ++i) {
        AppendRequest request = OneStream(absl::StrCat("P-", (t + i) % 3), kExpectAny, 1 + i % 3);
        request.command_id = absl::StrCat("t", t, "-", i);
        request.fingerprint = "f";
        for (EventToAppend& event : request.streams[0].events) {
          event.metadata.set_command_id(request.command_id);
        }
        if (!store->Append(request).ok()) failed.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failed.load(), 0);
  uint64_t total = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) total += 1 + i % 3;
  }
  for (Node* node : {a_.get(), b_.get()}) {
    ASSERT_OK(node->store()->AwaitPosition(total, absl::Seconds(20)));
    EXPECT_EQ(node->store()->HeadPosition(), total);
  }
  auto a_events = a_->store()->ReadAll(1, 100000);
  auto b_events = b_->store()->ReadAll(1, 100000);
  ASSERT_OK(a_events);
  ASSERT_OK(b_events);
  ASSERT_EQ(a_events->size(), total);
  ASSERT_EQ(b_events->size(), total);
  std::map<std::string, int64_t> versions;
  std::map<std::string, int> events_of_command;
  for (size_t i = 0; i < a_events->size(); ++i) {
    const v1::StoredEvent& event = (*a_events)[i];
    EXPECT_EQ(event.global_position(), i + 1);
    EXPECT_EQ(event.stream_version(), ++versions[event.stream_id()]);
    EXPECT_EQ(event.SerializeAsString(), (*b_events)[i].SerializeAsString());
    ++events_of_command[event.metadata().command_id()];
  }
  EXPECT_EQ(events_of_command.size(), size_t{kThreads * kPerThread});
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string id = absl::StrCat("t", t, "-", i);
      EXPECT_EQ(events_of_command[id], 1 + i % 3) << id;
      auto record = b_->store()->FindCommand(id);
      ASSERT_OK(record);
      ASSERT_TRUE(record->has_value()) << id;
      EXPECT_EQ((*record)->last_position() - (*record)->first_position(), uint64_t(i % 3)) << id;
    }
  }
  // What this test is about happened: chains, and refusals.
  EXPECT_GT(a_->store()->chained_publishes() + b_->store()->chained_publishes(), 0u);
  EXPECT_GT(a_->store()->refused_publishes() + b_->store()->refused_publishes(), 0u);
}

TEST_F(TwoNodesTest, ACommandIdAppliedOnOneNodeIsDeduplicatedOnTheOther) {
  AppendRequest request = OneStream("A-1", kExpectAny);
  request.command_id = "cmd-1";
  request.fingerprint = "f";
  auto first = a_->store()->Append(request);
  ASSERT_OK(first);
  auto again = b_->store()->Append(request);
  ASSERT_OK(again);
  EXPECT_TRUE(again->deduplicated);
  EXPECT_EQ(again->first_position, first->first_position);
  request.fingerprint = "other";
  EXPECT_CODE(b_->store()->Append(request), kAlreadyExists);
  EXPECT_EQ(a_->store()->HeadPosition(), 1u);
}

TEST_F(TwoNodesTest, APositionBeyondTheLogIsOutOfRangeAndOneOnTheWayIsWaitedFor) {
  ASSERT_OK(a_->store()->Append(OneStream("A-1", kExpectAny, 3)));
  EXPECT_OK(b_->store()->AwaitPosition(3, absl::Seconds(10)));
  EXPECT_CODE(b_->store()->AwaitPosition(100, absl::Seconds(10)), kOutOfRange);
}

TEST_F(TwoNodesTest, CatchUpReturnsOnceTheReplicaHoldsWhatTheOtherNodeAppended) {
  EXPECT_TRUE(b_->store()->shared());
  constexpr int kEvents = 400;  // One message each: b's replica takes a moment to write it.
  for (int i = 1; i <= 10; ++i) {
    ASSERT_OK(a_->store()->Append(OneStream(absl::StrCat("C-", i), kExpectNoStream, kEvents)));
    ASSERT_OK(b_->store()->CatchUp(absl::Seconds(10)));
    // No waiting: the replica holds it as CatchUp returns.
    EXPECT_EQ(b_->store()->HeadPosition(), uint64_t(kEvents * i));
    EXPECT_EQ(*b_->store()->StreamVersion(absl::StrCat("C-", i)), kEvents);
  }
}

// Deletes `stream` from the shared server, as if its messages had been lost.
void DeleteStream(const std::string& stream) {
  natsConnection* connection = nullptr;
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&connection, SharedServer().urls().c_str()), NATS_OK);
  ASSERT_EQ(natsConnection_JetStream(&js, connection, nullptr), NATS_OK);
  jsErrCode error = static_cast<jsErrCode>(0);
  EXPECT_EQ(js_DeleteStream(js, stream.c_str(), nullptr, &error), NATS_OK) << error;
  jsCtx_Destroy(js);
  natsConnection_Destroy(connection);
}

TEST(LostStreamTest, AReplicaAheadOfTheStreamRefusesAppendsWithDataLoss) {
  static ::testing::Environment* const stop =
      ::testing::AddGlobalTestEnvironment(new StopSharedServer);
  (void)stop;
  const std::string stream = UniqueStream();
  Node node(Options(stream, SharedServer()));
  ASSERT_OK(node.store()->Append(OneStream("A-1", kExpectNoStream, 3)));
  ASSERT_OK(node.store()->Append(OneStream("A-1", 3)));
  node.Close();
  DeleteStream(stream);
  node.Open();  // The stream is created again, empty; the replica still holds 4 events.
  auto refused = node.store()->Append(OneStream("B-1", kExpectNoStream));
  EXPECT_CODE(refused, kDataLoss);
  EXPECT_NE(refused.status().message().find("ends at 1"), std::string_view::npos)
      << refused.status();
  EXPECT_EQ(node.store()->HeadPosition(), 4u);
}

TEST(NatsDownTest, AStoreStopsWithoutWaitingOutARequestWhileNatsIsDown) {
  testing::NatsCluster cluster(1);
  NatsEventStoreOptions options = Options(UniqueStream(), cluster);
  options.jetstream.request_timeout = absl::Seconds(60);
  Node node(options);
  ASSERT_OK(node.store()->Append(OneStream("A-1", kExpectNoStream)));
  cluster.KillAll();
  // The replicator asks the stream for its last sequence every two seconds when nothing
  // arrives; with NATS gone, that request waits out its timeout.
  absl::SleepFor(absl::Seconds(3));
  const absl::Time start = absl::Now();
  node.Close();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30))
      << "the store waited for a request to JetStream";
}

TEST(NatsDownTest, AStoreOpensWhileNatsIsDownAndAppendsOnceItIsUp) {
  testing::NatsCluster cluster(1);
  cluster.KillAll();
  const NatsEventStoreOptions options = Options(UniqueStream(), cluster);
  testing::TempDir dir;
  std::unique_ptr<Database> db = std::move(Database::Open(dir.path(), {})).value();
  absl::StatusOr<std::unique_ptr<NatsEventStore>> store = NatsEventStore::Open(db.get(), options);
  ASSERT_OK(store);
  EXPECT_FALSE((*store)->WaitUntilReady(absl::Milliseconds(500)));
  EXPECT_CODE((*store)->Append(OneStream("A-1", kExpectNoStream)), kUnavailable);
  cluster.StartAll();
  ASSERT_TRUE((*store)->WaitUntilReady(absl::Seconds(30))) << "no catching up once NATS was up";
  ASSERT_OK((*store)->Append(OneStream("A-1", kExpectNoStream)));
  EXPECT_EQ((*store)->HeadPosition(), 1u);
}

}  // namespace
}  // namespace fidelis::storage::nats
