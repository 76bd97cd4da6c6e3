#include "tests/storage/event_store_contract.h"

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/test_util.h"

namespace fidelis::storage {

EventToAppend TestEvent(std::string type, std::string payload) {
  EventToAppend e;
  e.type = std::move(type);
  e.schema_version = 1;
  e.timestamp_micros = 42;
  e.payload = std::move(payload);
  e.metadata.set_command_id("c");
  return e;
}

AppendRequest OneStream(const std::string& stream, int64_t expected, int events) {
  AppendRequest request;
  StreamAppend& s = request.streams.emplace_back();
  s.stream_id = stream;
  s.expected_version = expected;
  for (int i = 0; i < events; ++i) s.events.push_back(TestEvent("E" + std::to_string(i)));
  return request;
}

namespace {

TEST_P(EventStoreContractTest, AMultiStreamAppendTakesConsecutivePositions) {
  AppendRequest request;
  for (const char* name : {"A-1", "B-1"}) {
    StreamAppend& s = request.streams.emplace_back();
    s.stream_id = name;
    s.expected_version = kExpectNoStream;
    s.events = {TestEvent("X"), TestEvent("Y")};
  }
  auto result = store()->Append(request);
  ASSERT_OK(result);
  EXPECT_EQ(result->first_position, 1u);
  EXPECT_EQ(result->last_position, 4u);
  ASSERT_EQ(result->streams.size(), 2u);
  EXPECT_EQ(result->streams[0].version(), 2);
  EXPECT_EQ(result->streams[1].version(), 2);
  auto all = store()->ReadAll(1, 100);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].stream_id(), "A-1");
  EXPECT_EQ((*all)[1].stream_version(), 2);
  EXPECT_EQ((*all)[2].stream_id(), "B-1");
  EXPECT_EQ((*all)[3].global_position(), 4u);
  EXPECT_EQ((*all)[3].metadata().command_id(), "c");
}

TEST_P(EventStoreContractTest, AFailedExpectationWritesNothingAndNamesTheVersion) {
  ASSERT_OK(store()->Append(OneStream("A-1", kExpectNoStream, 3)));
  AppendRequest request = OneStream("A-1", 2);
  StreamAppend& other = request.streams.emplace_back();
  other.stream_id = "B-1";
  other.expected_version = kExpectNoStream;
  other.events.push_back(TestEvent("X"));
  auto result = store()->Append(request);
  EXPECT_CODE(result, kAborted);
  EXPECT_NE(result.status().message().find("current version is 3"), absl::string_view::npos);
  EXPECT_EQ(std::string(*result.status().GetPayload(kCurrentVersionPayloadKey)), "3");
  EXPECT_EQ(store()->HeadPosition(), 3u);
  EXPECT_EQ(*store()->StreamVersion("B-1"), 0);
  EXPECT_OK(store()->Append(OneStream("A-1", 3)));
  EXPECT_OK(store()->Append(OneStream("A-1", kExpectAny)));
  EXPECT_EQ(*store()->StreamVersion("A-1"), 5);
}

TEST_P(EventStoreContractTest, MalformedBatchesAreInvalidArgument) {
  EXPECT_CODE(store()->Append(AppendRequest{}), kInvalidArgument);
  EXPECT_CODE(store()->Append(OneStream("", kExpectAny)), kInvalidArgument);
  EXPECT_CODE(store()->Append(OneStream(std::string("a\0b", 3), kExpectAny)), kInvalidArgument);
  EXPECT_CODE(store()->Append(OneStream("A-1", kExpectAny, 0)), kInvalidArgument);
  AppendRequest twice = OneStream("A-1", kExpectAny);
  twice.streams.push_back(twice.streams[0]);
  EXPECT_CODE(store()->Append(twice), kInvalidArgument);
  EXPECT_EQ(store()->HeadPosition(), 0u);
}

TEST_P(EventStoreContractTest, ACommandIdIsAppliedOnce) {
  AppendRequest request = OneStream("A-1", kExpectAny, 2);
  request.command_id = "cmd-1";
  request.fingerprint = "payload";
  auto first = store()->Append(request);
  ASSERT_OK(first);
  auto again = store()->Append(request);
  ASSERT_OK(again);
  EXPECT_TRUE(again->deduplicated);
  EXPECT_EQ(again->first_position, first->first_position);
  EXPECT_EQ(again->last_position, first->last_position);
  EXPECT_EQ(again->streams[0].version(), 2);
  EXPECT_EQ(store()->HeadPosition(), 2u);
  request.fingerprint = "another payload";
  EXPECT_CODE(store()->Append(request), kAlreadyExists);
  EXPECT_EQ(store()->HeadPosition(), 2u);
}

TEST_P(EventStoreContractTest, ConcurrentAppendsAreGaplessAndContiguousPerStream) {
  constexpr int kThreads = 8, kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto result = store()->Append(OneStream("S-" + std::to_string(t % 3), kExpectAny));
        ASSERT_OK(result);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store()->HeadPosition(), uint64_t{kThreads} * kPerThread);
  uint64_t expected_position = 1;
  std::map<std::string, int64_t> versions;
  ASSERT_OK(store()->Scan(1, 1 << 20, [&](const v1::StoredEvent& e) {
    EXPECT_EQ(e.global_position(), expected_position++);
    EXPECT_EQ(e.stream_version(), ++versions[e.stream_id()]);
    return true;
  }));
  EXPECT_EQ(expected_position, uint64_t{kThreads} * kPerThread + 1);
}

TEST_P(EventStoreContractTest, AsyncAppendsFromOneThreadAreAnsweredOnceInOrderElsewhere) {
  // One thread queues 500 appends without waiting; the store answers each once, in queue
  // order, on its own thread, after it is written.
  constexpr int kAppends = 500;
  absl::Mutex mu;
  std::vector<uint64_t> positions;
  int other_thread = 0;
  const std::thread::id caller = std::this_thread::get_id();
  for (int i = 0; i < kAppends; ++i) {
    store()->AppendAsync(OneStream("S-" + std::to_string(i % 7), kExpectAny),
                         [&](const absl::StatusOr<AppendResult>& result) {
                           ASSERT_OK(result);
                           absl::MutexLock lock(&mu);
                           positions.push_back(result->first_position);
                           if (std::this_thread::get_id() != caller) ++other_thread;
                         });
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::vector<uint64_t>* p) { return p->size() == kAppends; }, &positions));
  }
  EXPECT_EQ(other_thread, kAppends);
  for (int i = 0; i < kAppends; ++i) EXPECT_EQ(positions[i], uint64_t(i + 1));
  EXPECT_EQ(store()->HeadPosition(), uint64_t{kAppends});
}

TEST_P(EventStoreContractTest, AnAppendStartedFromACallbackGoesAheadOfTheQueue) {
  // The first append's callback holds the writer until 300 appends from this thread are
  // queued, then starts one more (as a command decided again after a conflict does). It is
  // written next, not after the 300.
  absl::Notification running, queued, all_done;
  std::atomic<uint64_t> again_position{0};
  std::atomic<int> answered{0};
  store()->AppendAsync(OneStream("A-1", kExpectAny),
                       [&](const absl::StatusOr<AppendResult>& first) {
                         ASSERT_OK(first);
                         running.Notify();
                         queued.WaitForNotification();
                         store()->AppendAsync(OneStream("A-1", kExpectAny),
                                              [&](const absl::StatusOr<AppendResult>& again) {
                                                ASSERT_OK(again);
                                                again_position = again->first_position;
                                                if (++answered == 301) all_done.Notify();
                                              });
                       });
  running.WaitForNotification();
  for (int i = 0; i < 300; ++i) {
    store()->AppendAsync(OneStream("B-1", kExpectAny),
                         [&](const absl::StatusOr<AppendResult>& result) {
                           ASSERT_OK(result);
                           if (++answered == 301) all_done.Notify();
                         });
  }
  queued.Notify();
  all_done.WaitForNotification();
  EXPECT_EQ(again_position.load(), 2u);
  EXPECT_EQ(store()->HeadPosition(), 302u);
}

TEST_P(EventStoreContractTest, AsyncAppendRefusedUpFrontIsAnsweredOnTheCallingThread) {
  bool answered = false;
  store()->AppendAsync(AppendRequest{}, [&](const absl::StatusOr<AppendResult>& result) {
    EXPECT_CODE(result, kInvalidArgument);
    answered = true;
  });
  EXPECT_TRUE(answered);
  EXPECT_EQ(store()->HeadPosition(), 0u);
}

TEST_P(EventStoreContractTest, ClosingTheStoreAnswersEveryQueuedAppend) {
  std::atomic<int> ok{0};
  for (int i = 0; i < 200; ++i) {
    store()->AppendAsync(OneStream("A-1", kExpectAny),
                         [&](const absl::StatusOr<AppendResult>& result) {
                           if (result.ok()) ++ok;
                         });
  }
  harness_->Close();  // Returns once every queued append is written and answered.
  EXPECT_EQ(ok.load(), 200);
  harness_->Open();
  EXPECT_EQ(store()->HeadPosition(), 200u);
}

TEST_P(EventStoreContractTest, ConcurrentWritersWithTheSameExpectationHaveOneWinner) {
  ASSERT_OK(store()->Append(OneStream("A-1", kExpectNoStream)));
  std::atomic<int> winners{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      auto r = store()->Append(OneStream("A-1", 1));
      if (r.ok()) ++winners;
      if (r.status().code() == absl::StatusCode::kAborted) ++conflicts;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(conflicts.load(), 15);
}

TEST_P(EventStoreContractTest, ReadStreamStartsAtTheRequestedVersion) {
  ASSERT_OK(store()->Append(OneStream("A-1", kExpectNoStream, 5)));
  ASSERT_OK(store()->Append(OneStream("A-10", kExpectNoStream, 2)));  // A prefix of no other.
  auto events = store()->ReadStream("A-1", 3, 100);
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].stream_version(), 3);
  EXPECT_EQ((*events)[2].stream_version(), 5);
  EXPECT_EQ(store()->ReadStream("A-1", 1, 2)->size(), 2u);
  EXPECT_EQ(store()->ReadStream("nope", 1, 2)->size(), 0u);
  EXPECT_EQ(*store()->StreamVersion("A-10"), 2);
  EXPECT_EQ(*store()->StreamVersion("A-"), 0);
}

TEST_P(EventStoreContractTest, EverythingSurvivesReopen) {
  ASSERT_OK(store()->Append(OneStream("A-1", kExpectNoStream, 3)));
  AppendRequest with_id = OneStream("B-1", kExpectNoStream);
  with_id.command_id = "k";
  with_id.fingerprint = "f";
  ASSERT_OK(store()->Append(with_id));
  harness_->Close();
  harness_->Open();
  EXPECT_EQ(store()->HeadPosition(), 4u);
  EXPECT_EQ(*store()->StreamVersion("A-1"), 3);
  EXPECT_CODE(store()->Append(OneStream("A-1", 2)), kAborted);
  auto next = store()->Append(OneStream("A-1", 3));
  ASSERT_OK(next);
  EXPECT_EQ(next->first_position, 5u);
  auto retried = store()->Append(with_id);
  ASSERT_OK(retried);
  EXPECT_TRUE(retried->deduplicated);
  EXPECT_EQ(retried->first_position, 4u);
}

TEST_P(EventStoreContractTest, WaitForHeadWakesOnAppend) {
  std::thread writer([this] {
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_OK(store()->Append(OneStream("A-1", kExpectAny)));
  });
  EXPECT_EQ(store()->WaitForHead(0, absl::Seconds(10)), 1u);
  writer.join();
  EXPECT_EQ(store()->WaitForHead(1, absl::Milliseconds(20)), 1u);
}

TEST_P(EventStoreContractTest, AfterCatchUpEveryAcknowledgedAppendIsRead) {
  ASSERT_OK(store()->CatchUp(absl::Seconds(10)));  // An empty log.
  for (int i = 1; i <= 3; ++i) {
    ASSERT_OK(store()->Append(OneStream("A-1", kExpectAny, 2)));
    ASSERT_OK(store()->CatchUp(absl::Seconds(10)));
    EXPECT_EQ(store()->HeadPosition(), uint64_t(2 * i));
    EXPECT_EQ(*store()->StreamVersion("A-1"), 2 * i);
  }
}

TEST_P(EventStoreContractTest, ScanStopsAtMaxCountAndWhenAsked) {
  ASSERT_OK(store()->Append(OneStream("A-1", kExpectAny, 10)));
  int seen = 0;
  ASSERT_OK(store()->Scan(4, 3, [&](const v1::StoredEvent& e) {
    EXPECT_EQ(e.global_position(), uint64_t(4 + seen));
    ++seen;
    return true;
  }));
  EXPECT_EQ(seen, 3);
  seen = 0;
  ASSERT_OK(store()->Scan(1, 100, [&](const v1::StoredEvent&) { return ++seen < 2; }));
  EXPECT_EQ(seen, 2);
}

TEST_P(EventStoreContractTest, HeadListenersHearEveryAdvanceUntilRemoved) {
  struct Recorder : HeadListener {
    void OnHeadAdvanced(uint64_t head) override {
      absl::MutexLock lock(&mu);
      heads.push_back(head);
    }
    absl::Mutex mu;
    std::vector<uint64_t> heads;
  } recorder;
  store()->AddHeadListener(&recorder);
  ASSERT_OK(store()->Append(OneStream("A-1", kExpectAny, 3)));
  ASSERT_OK(store()->Append(OneStream("A-1", kExpectAny, 2)));
  store()->RemoveHeadListener(&recorder);
  ASSERT_OK(store()->Append(OneStream("A-1", kExpectAny)));
  absl::MutexLock lock(&recorder.mu);
  EXPECT_EQ(recorder.heads, (std::vector<uint64_t>{3, 5}));
}

TEST_P(EventStoreContractTest, NoAppendIsPendingOnceTheAppendsAreAnswered) {
  ASSERT_OK(store()->Append(OneStream("A-1", kExpectAny)));
  EXPECT_EQ(store()->PendingAppends(), 0u);
  EXPECT_TRUE(store()->WaitUntilNoPendingAppends(absl::Seconds(10)));
}

}  // namespace
}  // namespace fidelis::storage
