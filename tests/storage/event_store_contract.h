// The EventStore contract (storage/event_store.h) as one test suite that every implementation
// runs. An implementation provides a harness that owns its store (and whatever the store needs:
// a directory, servers) and instantiates the suite with a factory of harnesses:
//
//   INSTANTIATE_TEST_SUITE_P(RocksDb, EventStoreContractTest,
//                            ::testing::Values(&MakeRocksDbHarness),
//                            [](const auto&) { return std::string("Embedded"); });
//
// (A name, since a factory's address would name the tests differently in every process.)
//
// The tests (event_store_contract_test.cc) use nothing but the interface.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "storage/event_store.h"

namespace fidelis::storage {

class EventStoreHarness {
 public:
  virtual ~EventStoreHarness() = default;
  // The store under test; null between Close() and Open().
  virtual EventStore* store() = 0;
  // Destroys the store, which answers every append already queued first.
  virtual void Close() = 0;
  // Opens the store again on the same data.
  virtual void Open() = 0;
};

using EventStoreHarnessFactory = std::unique_ptr<EventStoreHarness> (*)();

class EventStoreContractTest : public ::testing::TestWithParam<EventStoreHarnessFactory> {
 protected:
  void SetUp() override {
    harness_ = GetParam()();
    ASSERT_NE(harness_->store(), nullptr);
  }
  EventStore* store() { return harness_->store(); }

  std::unique_ptr<EventStoreHarness> harness_;
};

// Test helpers shared with implementation-specific tests.
EventToAppend TestEvent(std::string type, std::string payload = "p");
// An append of `events` events to `stream`, expecting `expected`.
AppendRequest OneStream(const std::string& stream, int64_t expected, int events = 1);

}  // namespace fidelis::storage
