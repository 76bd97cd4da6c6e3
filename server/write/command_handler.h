// The write side of the server: commands become events in the log. This folder owns the write
// path from a decoded request to an acknowledged append; the gRPC adapters (server/api/) only
// call it.
//
//   command_table.h  - every command the service accepts, once: its method, its request and
//                      response, and the domain decision it runs.
//   command_handler.h - load the aggregate, decide, append with optimistic concurrency, retry
//                      on conflict (this file).
//   command_batch.h  - ExecuteCommands: many commands in one call, ordered per account.
//   idempotency.h    - command ids, fingerprints and answering retries.
//
// CommandHandler validates a command, loads the account aggregate, decides, and appends the
// resulting events with optimistic concurrency, deciding again on a conflict the caller did
// not ask for (no expected version given).
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
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "domain/account.h"
#include "domain/clock.h"
#include "domain/event_registry.h"
#include "server/write/idempotency.h"
#include "storage/event_store.h"
#include "storage/snapshot_store.h"

namespace fidelis::server {

inline constexpr int64_t kSnapshotInterval = 64;

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

// A command on one existing account, as the handler runs it: which account, the command's
// shape check, and its decision on the account's state. Made by MakeAccountCommand from a
// domain command and its domain functions (a row of the command table does so).
class AccountCommand {
 public:
  virtual ~AccountCommand() = default;
  virtual const std::string& account_id() const = 0;
  // INVALID_ARGUMENT naming the field at fault.
  virtual absl::Status Validate() const = 0;
  // The events to append after `state`, or the rule the command breaks.
  virtual absl::StatusOr<std::vector<NewEvent>> Decide(const AccountState& state) const = 0;
};

// `command` (a domain command with an account_id) with its validation and decision.
template <typename Command>
std::unique_ptr<const AccountCommand> MakeAccountCommand(
    Command command, absl::Status (*validate)(const Command&),
    absl::StatusOr<std::vector<NewEvent>> (*decide)(const AccountState&, const Command&)) {
  class Bound final : public AccountCommand {
   public:
    Bound(Command command, absl::Status (*validate)(const Command&),
          absl::StatusOr<std::vector<NewEvent>> (*decide)(const AccountState&, const Command&))
        : command_(std::move(command)), validate_(validate), decide_(decide) {}
    const std::string& account_id() const override { return command_.account_id; }
    absl::Status Validate() const override { return validate_(command_); }
    absl::StatusOr<std::vector<NewEvent>> Decide(const AccountState& state) const override {
      return decide_(state, command_);
    }

   private:
    const Command command_;
    absl::Status (*const validate_)(const Command&);
    absl::StatusOr<std::vector<NewEvent>> (*const decide_)(const AccountState&, const Command&);
  };
  return std::make_unique<Bound>(std::move(command), validate, decide);
}

// Receives a command's outcome, exactly once: on the calling thread when the command ends
// before its append (bad input, a rule broken, a duplicate), otherwise on the event store's
// writer thread, where it must be quick and must not block.
using CommandDone = absl::AnyInvocable<void(absl::StatusOr<CommandOutcome>) &&>;
using TransferDone = absl::AnyInvocable<void(absl::StatusOr<TransferOutcome>) &&>;

class CommandHandler {
 public:
  CommandHandler(storage::EventStore* store, storage::SnapshotStore* snapshots,
                 const EventRegistry* registry, const Clock* clock);

  // A command on the existing account `command->account_id()`: validate, load, check the
  // context's expected_version, decide, append. NOT_FOUND and FAILED_PRECONDITION come from
  // the decision.
  void ExecuteAsync(std::unique_ptr<const AccountCommand> command, CommandContext context,
                    CommandDone done);
  // Opens an account with a new id; `command.account_id` is ignored. The account number is
  // reserved in the same append (ALREADY_EXISTS when it is taken).
  void OpenAsync(OpenAccountCommand command, CommandContext context, CommandDone done);
  // Moves money in one append of a debit and a credit. `command.transfer_id` is ignored: a new
  // id is generated. The context's expected_version is ignored in favour of the two given.
  void TransferAsync(TransferCommand command, CommandContext context,
                     std::optional<int64_t> from_expected, std::optional<int64_t> to_expected,
                     TransferDone done);

  // The same, waiting for the outcome.
  absl::StatusOr<CommandOutcome> Execute(std::unique_ptr<const AccountCommand> command,
                                         const CommandContext& context);
  absl::StatusOr<CommandOutcome> Open(OpenAccountCommand command, const CommandContext& context);
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
  class AccountOperation;
  class OpenOperation;
  class TransferOperation;

  // Answers `op` from an earlier command with the same command_id, or runs its first attempt.
  void Start(std::unique_ptr<Operation> op);
  // One attempt of `op`: prepares its append and queues it; the append's callback commits,
  // retries or fails the operation.
  void Attempt(std::unique_ptr<Operation> op);
  absl::Status CheckDeadline(absl::Time deadline) const;
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

}  // namespace fidelis::server
