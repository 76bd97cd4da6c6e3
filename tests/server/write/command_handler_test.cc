// The command handler on real RocksDB, with an event store decorator that counts reads, to
// show that loading an aggregate costs the same however long its stream is.
#include "server/write/command_handler.h"

#include <map>

#include "absl/synchronization/mutex.h"
#include "domain/account_projectors.h"
#include "domain/event_types.h"
#include "gtest/gtest.h"
#include "storage/rocksdb_event_store.h"
#include "tests/test_util.h"

namespace fidelis::server {
namespace {

class CountingStore : public storage::EventStore {
 public:
  explicit CountingStore(storage::EventStore* inner) : inner_(inner) {}
  void AppendAsync(storage::AppendRequest r, storage::AppendCallback done) override {
    inner_->AppendAsync(std::move(r), std::move(done));
  }
  absl::StatusOr<std::optional<v1::CommandRecord>> FindCommand(std::string_view id) const override {
    return inner_->FindCommand(id);
  }
  absl::StatusOr<std::vector<v1::StoredEvent>> ReadStream(std::string_view s, int64_t from,
                                                          size_t max) const override {
    auto events = inner_->ReadStream(s, from, max);
    if (events.ok()) {
      absl::MutexLock lock(&mu_);
      events_read += events->size();
      events_read_of[std::string(s)] += events->size();
    }
    return events;
  }
  absl::StatusOr<int64_t> StreamVersion(std::string_view s) const override {
    return inner_->StreamVersion(s);
  }
  absl::Status Scan(uint64_t from, size_t max,
                    const std::function<bool(const v1::StoredEvent&)>& visit) const override {
    return inner_->Scan(from, max, visit);
  }
  uint64_t HeadPosition() const override { return inner_->HeadPosition(); }
  uint64_t WaitForHead(uint64_t after, absl::Duration timeout) const override {
    return inner_->WaitForHead(after, timeout);
  }
  // As a cluster node's replica says: other writers append too. CatchUp is counted, and
  // fails while `unreachable`.
  bool shared() const override { return shared_log; }
  absl::Status CatchUp(absl::Duration /*timeout*/) const override {
    ++catch_ups;
    if (unreachable) return absl::UnavailableError("the log of record is down");
    return absl::OkStatus();
  }
  bool shared_log = false;
  bool unreachable = false;
  mutable int catch_ups = 0;
  // Events read, in all and per stream. Read once the commands are done.
  mutable size_t events_read = 0;
  mutable std::map<std::string, size_t> events_read_of;

 private:
  storage::EventStore* inner_;
  mutable absl::Mutex mu_;
};

std::unique_ptr<const AccountCommand> Deposit(const std::string& id, int64_t amount) {
  return MakeAccountCommand(DepositCommand{id, amount, "EUR", ""}, &ValidateDeposit,
                            &DecideDeposit);
}

std::unique_ptr<const AccountCommand> Withdrawal(const std::string& id, int64_t amount) {
  return MakeAccountCommand(WithdrawalCommand{id, amount, "EUR", ""}, &ValidateWithdrawal,
                            &DecideWithdrawal);
}

class FixedClock : public Clock {
 public:
  int64_t NowMicros() const override { return 1'700'000'000'000'000; }
};

// Counts the outcomes of asynchronous commands. Thread-safe.
class Outcomes {
 public:
  void Record(bool ok) {
    absl::MutexLock lock(&mu_);
    ++done_;
    if (ok) ++ok_;
    cv_.SignalAll();
  }
  // Waits until `n` outcomes have arrived; returns how many were OK.
  int Wait(int n) {
    absl::MutexLock lock(&mu_);
    while (done_ < n) cv_.Wait(&mu_);
    return ok_;
  }

 private:
  absl::Mutex mu_;
  absl::CondVar cv_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  int ok_ ABSL_GUARDED_BY(mu_) = 0;
};

class CommandHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::move(storage::Database::Open(dir_.path(), {})).value();
    store_ = std::move(storage::RocksDbEventStore::Open(db_.get())).value();
    snapshots_ = std::make_unique<storage::SnapshotStore>(db_.get());
    counting_ = std::make_unique<CountingStore>(store_.get());
  }
  std::unique_ptr<CommandHandler> NewHandler() {
    return std::make_unique<CommandHandler>(counting_.get(), snapshots_.get(), &registry_, &clock_);
  }
  std::string OpenWithDeposits(CommandHandler& handler, const std::string& number, int deposits) {
    auto opened = handler.Open(OpenAccountCommand{"", number, "H", 0, "EUR"}, {});
    EXPECT_TRUE(opened.ok());
    for (int i = 0; i < deposits; ++i) {
      EXPECT_TRUE(handler.Execute(Deposit(opened->account_id, 1), {}).ok());
    }
    return opened->account_id;
  }

  testing::TempDir dir_;
  EventRegistry registry_ = MakeAccountEventRegistry("EUR");
  FixedClock clock_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::RocksDbEventStore> store_;
  std::unique_ptr<storage::SnapshotStore> snapshots_;
  std::unique_ptr<CountingStore> counting_;
};

TEST_F(CommandHandlerTest, ColdLoadReadsAtMostASnapshotIntervalOfEvents) {
  auto writer = NewHandler();
  const std::string short_id = OpenWithDeposits(*writer, "SHORT", 9);
  const std::string long_id = OpenWithDeposits(*writer, "LONG", 2000);

  auto cold = NewHandler();  // Empty cache, as after a restart.
  counting_->events_read = 0;
  auto short_state = cold->Load(short_id);
  ASSERT_OK(short_state);
  const size_t short_reads = counting_->events_read;
  counting_->events_read = 0;
  auto long_state = cold->Load(long_id);
  ASSERT_OK(long_state);
  EXPECT_EQ(long_state->balance, 2000);
  EXPECT_EQ(long_state->version, 2001);
  EXPECT_EQ(short_state->balance, 9);
  EXPECT_LE(counting_->events_read, static_cast<size_t>(kSnapshotInterval));
  EXPECT_LE(short_reads, static_cast<size_t>(kSnapshotInterval));
  // And a warm load reads nothing at all.
  counting_->events_read = 0;
  ASSERT_OK(cold->Load(long_id));
  EXPECT_EQ(counting_->events_read, 0u);
}

TEST_F(CommandHandlerTest, AStaleCacheIsCorrectedByTheLogsConcurrencyCheck) {
  auto a = NewHandler();
  auto b = NewHandler();  // Two handlers over one log: each cache goes stale.
  const std::string id = OpenWithDeposits(*a, "N1", 0);
  ASSERT_OK(a->Execute(Deposit(id, 100), {}));
  ASSERT_OK(b->Load(id));
  ASSERT_OK(a->Execute(Withdrawal(id, 100), {}));
  // b still believes the balance is 100; the append conflicts, b reloads and refuses.
  EXPECT_CODE(b->Execute(Withdrawal(id, 100), {}), kFailedPrecondition);
  EXPECT_EQ(*store_->StreamVersion(AccountStream(id)), 3);
}

// On a shared log another node's deposit does not reach this node's cache: a refusal is
// decided again on the log's state before it is given.
TEST_F(CommandHandlerTest, OnASharedLogARefusalIsDecidedAgainOnTheLogsState) {
  counting_->shared_log = true;
  auto a = NewHandler();
  auto b = NewHandler();
  const std::string id = OpenWithDeposits(*a, "N1", 0);
  ASSERT_OK(b->Execute(Deposit(id, 10), {}));  // b caches a balance of 10.
  ASSERT_OK(a->Execute(Deposit(id, 100), {}));
  EXPECT_EQ(counting_->catch_ups, 0);  // Accepted commands never wait for it.
  ASSERT_OK(b->Execute(Withdrawal(id, 50), {}));
  EXPECT_EQ(counting_->catch_ups, 1);
  // A refusal that stands is decided twice, and checked once.
  EXPECT_CODE(b->Execute(Withdrawal(id, 1000), {}), kFailedPrecondition);
  EXPECT_EQ(counting_->catch_ups, 2);
  EXPECT_CODE(b->Execute(Deposit(std::string(32, '0'), 1), {}), kNotFound);
  EXPECT_EQ(counting_->catch_ups, 3);
  // A refusal that cannot be checked is not given: nothing is known for sure.
  counting_->unreachable = true;
  auto refused = b->Execute(Withdrawal(id, 1000), {});
  EXPECT_CODE(refused, kUnavailable);
  EXPECT_NE(refused.status().message().find("insufficient"), std::string_view::npos)
      << refused.status();
  EXPECT_EQ(*store_->StreamVersion(AccountStream(id)), 4);
}

// A local log is the log of record: a refusal is given at once, on the cache.
TEST_F(CommandHandlerTest, OnALocalLogARefusalIsGivenAtOnce) {
  auto handler = NewHandler();
  const std::string id = OpenWithDeposits(*handler, "N1", 1);
  EXPECT_CODE(handler->Execute(Withdrawal(id, 1000), {}), kFailedPrecondition);
  EXPECT_CODE(handler->Execute(Deposit(std::string(32, '0'), 1), {}), kNotFound);
  EXPECT_EQ(counting_->catch_ups, 0);
}

TEST_F(CommandHandlerTest, RetriesAfterConflictsDecideOnTheCachedStateTheWinnerLeft) {
  auto handler = NewHandler();
  const std::string id = OpenWithDeposits(*handler, "N1", 3);
  counting_->events_read = 0;
  // All decided on the same cached state at once: every one after the first conflicts in the
  // log, and is decided again on the state the command before it committed.
  constexpr int kDeposits = 40;
  Outcomes outcomes;
  for (int i = 0; i < kDeposits; ++i) {
    handler->ExecuteAsync(Deposit(id, 1), {}, [&](const absl::StatusOr<CommandOutcome>& outcome) {
      outcomes.Record(outcome.ok());
    });
  }
  EXPECT_EQ(outcomes.Wait(kDeposits), kDeposits);
  EXPECT_EQ(*store_->StreamVersion(AccountStream(id)), 1 + 3 + kDeposits);
  auto state = handler->Load(id);
  ASSERT_OK(state);
  EXPECT_EQ(state->balance, 3 + kDeposits);
  EXPECT_EQ(counting_->events_read, 0u);  // No retry went back to the log.
}

TEST_F(CommandHandlerTest, ATransferRetriedAfterAConflictKeepsTheCachedStateOfTheContendedAccount) {
  auto handler = NewHandler();
  const std::string from = OpenWithDeposits(*handler, "N1", 25);
  constexpr int kTransfers = 20;
  std::vector<std::string> to;
  for (int i = 0; i < kTransfers; ++i)
    to.push_back(OpenWithDeposits(*handler, "D" + std::to_string(i), 0));
  counting_->events_read_of.clear();
  // All decided on the same cached source: every one after the first conflicts on it.
  Outcomes outcomes;
  for (int i = 0; i < kTransfers; ++i) {
    handler->TransferAsync(
        TransferCommand{"", from, to[i], 1, "EUR", ""}, {}, std::nullopt, std::nullopt,
        [&](const absl::StatusOr<TransferOutcome>& outcome) { outcomes.Record(outcome.ok()); });
  }
  EXPECT_EQ(outcomes.Wait(kTransfers), kTransfers);
  auto state = handler->Load(from);
  ASSERT_OK(state);
  EXPECT_EQ(state->balance, 25 - kTransfers);
  EXPECT_EQ(counting_->events_read_of[AccountStream(from)], 0u);  // Never reloaded.
}

TEST_F(CommandHandlerTest, ACommandPastItsDeadlineWritesNothing) {
  auto handler = NewHandler();
  const std::string id = OpenWithDeposits(*handler, "N1", 0);
  CommandContext late;
  late.deadline = absl::FromUnixMicros(clock_.NowMicros()) - absl::Seconds(1);
  EXPECT_CODE(handler->Execute(Deposit(id, 1), late), kDeadlineExceeded);
  EXPECT_EQ(store_->HeadPosition(), 2u);
}

}  // namespace
}  // namespace fidelis::server
