// CommandHandler: the write path. Validates a command, loads the account aggregate, decides,
// and appends the resulting events with optimistic concurrency, retrying on a conflict that
// the caller did not ask for (no expected_version given).
//
// Every command runs asynchronously: the calling thread validates, loads and decides, and hands
// the events to the store's writer; the writer thread completes the command after the sync
// (and, on a conflict, decides again and re-queues it). So no thread waits for a sync per
// command. The synchronous methods wrap the asynchronous ones.
//
// Aggregates are loaded from an in-memory cache, or from the newest snapshot plus the events
// after it, so a load costs the same for a stream of 10 events and one of 100,000. Snapshots
// are written every kSnapshotInterval events; the log stays the truth.
//
// Thread-safety: all methods may be called concurrently from any thread, except that the
// synchronous ones must not be called from a completion callback. The store, snapshot store,
// registry and clock are not owned and must outlive the handler and every command in flight.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/account.h"
#include "domain/clock.h"
#include "domain/event_registry.h"
#include "storage/event_store.h"
#include "storage/snapshot_store.h"

namespace fidelis::server {

inline constexpr int64_t kSnapshotInterval = 64;

// What every command carries besides its payload.
struct CommandContext {
  std::optional<int64_t> expected_version;
  std::string command_id;
  std::string correlation_id;
  std::string causation_id;
  // Identifies the request's payload for idempotency (see Fingerprint in services.cc).
  std::string fingerprint;
  // The command is not written once this passes (DEADLINE_EXCEEDED).
  absl::Time deadline = absl::InfiniteFuture();
};

struct CommandOutcome {
  std::string account_id;
  int64_t stream_version = 0;
  uint64_t global_position = 0;
  bool deduplicated = false;
};

struct TransferOutcome {
  std::string transfer_id;
  int64_t from_version = 0;
  int64_t to_version = 0;
  uint64_t debit_position = 0;
  uint64_t credit_position = 0;
  bool deduplicated = false;
};

// Validates the metadata of a command context (lengths, UTF-8). INVALID_ARGUMENT naming
// "options.<field>".
absl::Status ValidateContext(const CommandContext& context);

// Receives a command's outcome, exactly once: on the calling thread when the command ends
// before its append (bad input, a rule broken, a duplicate), otherwise on the event store's
// writer thread, where it must be quick and must not block.
using CommandDone = absl::AnyInvocable<void(absl::StatusOr<CommandOutcome>) &&>;
using TransferDone = absl::AnyInvocable<void(absl::StatusOr<TransferOutcome>) &&>;

class CommandHandler {
 public:
  CommandHandler(storage::EventStore* store, storage::SnapshotStore* snapshots,
                 const EventRegistry* registry, const Clock* clock);

  // `command.account_id` is ignored: a new id is generated.
  void OpenAsync(OpenAccountCommand command, CommandContext context, CommandDone done);
  void DepositAsync(DepositCommand command, CommandContext context, CommandDone done);
  void WithdrawAsync(WithdrawalCommand command, CommandContext context, CommandDone done);
  void CloseAsync(CloseAccountCommand command, CommandContext context, CommandDone done);
  // As Transfer, below.
  void TransferAsync(TransferCommand command, CommandContext context,
                     std::optional<int64_t> from_expected, std::optional<int64_t> to_expected,
                     TransferDone done);

  // The same, waiting for the outcome.
  absl::StatusOr<CommandOutcome> Open(OpenAccountCommand command, const CommandContext& context);
  absl::StatusOr<CommandOutcome> Deposit(const DepositCommand& command,
                                         const CommandContext& context);
  absl::StatusOr<CommandOutcome> Withdraw(const WithdrawalCommand& command,
                                          const CommandContext& context);
  absl::StatusOr<CommandOutcome> Close(const CloseAccountCommand& command,
                                       const CommandContext& context);
  // `command.transfer_id` is ignored: a new id is generated. The context's expected_version is
  // ignored in favour of the two below.
  absl::StatusOr<TransferOutcome> Transfer(TransferCommand command, const CommandContext& context,
                                           std::optional<int64_t> from_expected,
                                           std::optional<int64_t> to_expected);

  // Loads an account's current state (version 0 when it does not exist).
  absl::StatusOr<AccountState> Load(const std::string& account_id);

 private:
  // A command in flight, and its kinds (command_handler.cc).
  class Operation;
  template <typename Outcome>
  class OperationWith;
  template <typename Command>
  class AccountOperation;
  class OpenOperation;
  class TransferOperation;

  // Answers `op` from an earlier command with the same command_id, or runs its first attempt.
  void Start(std::unique_ptr<Operation> op);
  // One attempt of `op`: prepares its append and queues it; the append's callback commits,
  // retries or fails the operation.
  void Attempt(std::unique_ptr<Operation> op);
  // The stored result of an earlier command with the context's command_id, if any.
  absl::StatusOr<std::optional<storage::AppendResult>> Deduplicate(const CommandContext& context);
  storage::EventToAppend ToAppend(const NewEvent& event, const CommandContext& context) const;
  void Remember(const AccountState& state);
  void Forget(const std::string& account_id);
  // After an append that named `account_id` failed with `conflict` (ABORTED, naming the stream
  // that conflicted and its version): keeps the cached state when the conflict is on this
  // account's stream and the cache is at that version, which is the case when the command that
  // won committed just before (on the writer thread, in group order) and cached the state it
  // left; the retry then decides on it without reading the log. Otherwise forgets it.
  void ForgetAfterConflict(const std::string& account_id, const absl::Status& conflict);
  void MaybeSnapshot(const AccountState& state, int64_t previous_version);

  storage::EventStore* const store_;
  storage::SnapshotStore* const snapshots_;
  const EventRegistry* const registry_;
  const Clock* const clock_;

  static constexpr size_t kShards = 16;
  static constexpr size_t kMaxCachedPerShard = 1 << 16;
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, AccountState> accounts ABSL_GUARDED_BY(mu);
  };
  std::array<Shard, kShards> shards_;
};

// 32 lower-case hex digits from a cryptographically seeded generator.
std::string NewId();

// The 32 lower-case hex digits of two 64-bit words (the account-id format).
std::string HexId(uint64_t a, uint64_t b);

}  // namespace fidelis::server
