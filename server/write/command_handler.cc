#include "server/write/command_handler.h"

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/notification.h"
#include "domain/errors.h"
#include "domain/event_types.h"
#include "domain/ids.h"
#include "domain/status_macros.h"
#include "domain/strings.h"

namespace fidelis::server {
namespace {

// Conflicts the server resolves by reloading and deciding again before giving up.
constexpr int kMaxAttempts = 100;
// The longest a rejection waits for this node to catch up with the log of record.
constexpr absl::Duration kMaxCatchUp = absl::Seconds(10);

// Whether `status` refuses a command on the state it was decided on (rather than on its input,
// or failing to decide).
bool IsRejection(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kAlreadyExists:
      return true;
    default:
      return false;
  }
}

CommandOutcome OutcomeFor(const storage::AppendResult& result, std::string_view account_stream) {
  CommandOutcome outcome;
  outcome.global_position = result.last_position;
  outcome.deduplicated = result.deduplicated;
  for (const auto& stream : result.streams) {
    if (CategoryOf(stream.stream_id()) == kAccountCategory &&
        (account_stream.empty() || stream.stream_id() == account_stream)) {
      outcome.account_id = std::string(StreamEntityId(stream.stream_id()));
      outcome.stream_version = stream.version();
    }
  }
  return outcome;
}

absl::Status ExpectedVersionMismatch(std::string_view stream, int64_t expected, int64_t actual) {
  return absl::AbortedError(StrCat("version conflict on stream ", stream, ": expected version ",
                                   expected, ", current version is ", actual));
}

absl::Status ApplyAll(AccountState& state, const std::vector<NewEvent>& events) {
  for (const NewEvent& event : events) {
    RETURN_IF_ERROR(ApplyAccountEvent(state, event.type, *event.payload));
  }
  return absl::OkStatus();
}

// Runs an asynchronous command and waits for its outcome.
template <typename Outcome, typename Start>
absl::StatusOr<Outcome> Wait(Start start) {
  absl::Notification finished;
  absl::StatusOr<Outcome> outcome;
  start([&](absl::StatusOr<Outcome> result) {
    outcome = std::move(result);
    finished.Notify();
  });
  finished.WaitForNotification();
  return outcome;
}

}  // namespace

CommandHandler::CommandHandler(storage::EventStore* store, storage::SnapshotStore* snapshots,
                               const EventRegistry* registry, const Clock* clock)
    : store_(store), snapshots_(snapshots), registry_(registry), clock_(clock) {}

storage::EventToAppend CommandHandler::ToAppend(const NewEvent& event,
                                                const CommandContext& context) const {
  storage::EventToAppend out;
  out.type = event.type;
  out.schema_version = event.schema_version;
  out.timestamp_micros = clock_->NowMicros();
  event.payload->SerializeToString(&out.payload);
  out.metadata.set_command_id(context.command_id);
  out.metadata.set_correlation_id(context.correlation_id);
  out.metadata.set_causation_id(context.causation_id);
  return out;
}

absl::StatusOr<AccountState> CommandHandler::Load(const std::string& account_id) {
  Shard& shard = shards_[std::hash<std::string>()(account_id) % kShards];
  {
    absl::MutexLock lock(&shard.mu);
    auto it = shard.accounts.find(account_id);
    if (it != shard.accounts.end()) return it->second;
  }
  const std::string stream = AccountStream(account_id);
  AccountState state;
  ASSIGN_OR_RETURN(std::optional<std::string> snapshot, snapshots_->Get(stream));
  v1::AccountSnapshot stored;
  if (snapshot && stored.ParseFromString(*snapshot) && stored.account_id() == account_id) {
    state.version = stored.version();
    state.account_id = stored.account_id();
    state.account_number = stored.account_number();
    state.balance = stored.balance();
    state.currency = stored.currency();
    state.closed = stored.closed();
  }
  while (true) {
    ASSIGN_OR_RETURN(std::vector<v1::StoredEvent> events,
                     store_->ReadStream(stream, state.version + 1, 1000));
    for (const v1::StoredEvent& event : events) {
      absl::StatusOr<DecodedEvent> decoded =
          registry_->Decode(event.type(), event.schema_version(), event.payload());
      if (decoded.ok()) {
        RETURN_IF_ERROR(ApplyAccountEvent(state, decoded->type, *decoded->payload));
      } else if (decoded.status().code() != absl::StatusCode::kNotFound) {
        return Annotate(decoded.status(),
                        StrCat("loading ", stream, " at version ", event.stream_version()));
      }
      // Events of retired types no upcaster knows carry no state the rules depend on; they
      // still count towards the stream's version.
      state.version = event.stream_version();
    }
    if (events.size() < 1000) break;
  }
  if (state.exists()) Remember(state);
  return state;
}

void CommandHandler::Remember(const AccountState& state) {
  Shard& shard = shards_[std::hash<std::string>()(state.account_id) % kShards];
  absl::MutexLock lock(&shard.mu);
  auto [it, inserted] = shard.accounts.try_emplace(state.account_id, state);
  if (!inserted && it->second.version < state.version) it->second = state;
  if (inserted && shard.accounts.size() > kMaxCachedPerShard) {
    // A cache, not the truth: drop an arbitrary other entry to stay bounded.
    auto victim = shard.accounts.begin();
    if (victim->first == state.account_id) ++victim;
    shard.accounts.erase(victim);
  }
}

void CommandHandler::Forget(const std::string& account_id) {
  Shard& shard = shards_[std::hash<std::string>()(account_id) % kShards];
  absl::MutexLock lock(&shard.mu);
  shard.accounts.erase(account_id);
}

void CommandHandler::ForgetAfterConflict(const std::string& account_id,
                                         const absl::Status& conflict) {
  auto stream = conflict.GetPayload(storage::kConflictStreamPayloadKey);
  auto current = conflict.GetPayload(storage::kCurrentVersionPayloadKey);
  int64_t version = 0;
  if (stream && std::string(*stream) == AccountStream(account_id) && current &&
      absl::SimpleAtoi(std::string(*current), &version)) {
    Shard& shard = shards_[std::hash<std::string>()(account_id) % kShards];
    absl::MutexLock lock(&shard.mu);
    auto it = shard.accounts.find(account_id);
    if (it != shard.accounts.end() && it->second.version == version) return;
  }
  Forget(account_id);
}

void CommandHandler::MaybeSnapshot(const AccountState& state, int64_t previous_version) {
  if (state.version / kSnapshotInterval == previous_version / kSnapshotInterval) return;
  v1::AccountSnapshot snapshot;
  snapshot.set_version(state.version);
  snapshot.set_account_id(state.account_id);
  snapshot.set_account_number(state.account_number);
  snapshot.set_balance(state.balance);
  snapshot.set_currency(state.currency);
  snapshot.set_closed(state.closed);
  // A failed snapshot write only makes the next cold load longer.
  snapshots_->Put(AccountStream(state.account_id), snapshot.SerializeAsString()).IgnoreError();
}

// A command in flight. The caller's thread runs its first attempt; after that it lives in its
// append's callback, on the store's writer thread. So one thread at a time uses it.
class CommandHandler::Operation {
 public:
  Operation(CommandHandler* handler, CommandContext context)
      : handler_(handler), context_(std::move(context)) {}
  virtual ~Operation() = default;

  const CommandContext& context() const { return context_; }

  // Loads, checks and decides against the current state, and fills `request`. A non-OK status
  // ends the command with that status.
  virtual absl::Status Prepare(storage::AppendRequest& request) = 0;
  // Ends the command after its append succeeded.
  virtual void Commit(const storage::AppendResult& result) = 0;
  // Ends the command with the result of an earlier one with the same command_id.
  virtual void Repeat(const storage::AppendResult& earlier) = 0;
  // Ends the command with an error.
  virtual void Fail(absl::Status status) = 0;
  // Whether an append error is a version conflict to decide again on fresh state; forgets what
  // was cached. Never, unless a kind says otherwise.
  virtual bool Retry(const absl::Status& /*status*/) { return false; }
  // The caller's status for an append error that is not retried.
  virtual absl::Status MapError(const absl::Status& status) { return MapAppendError(status); }
  // The caller's status when every attempt conflicted.
  virtual absl::Status Contention() const {
    return absl::AbortedError("the command kept conflicting; retry it");
  }
  // Forgets the cached state of the accounts this operation loads.
  virtual void ForgetCached() {}

  int attempts = 0;
  // Whether a rejection was decided again after catching up with the log of record.
  bool confirmed = false;

 protected:
  void SetOptions(storage::AppendRequest& request) const { StampAppend(context_, request); }

  CommandHandler* const handler_;
  const CommandContext context_;
};

// An operation that ends with an `Outcome`.
template <typename Outcome>
class CommandHandler::OperationWith : public Operation {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<Outcome>) &&>;
  OperationWith(CommandHandler* handler, CommandContext context, Done done)
      : Operation(handler, std::move(context)), done_(std::move(done)) {}

  void Fail(absl::Status status) final { Finish(std::move(status)); }

 protected:
  void Finish(absl::StatusOr<Outcome> outcome) { std::move(done_)(std::move(outcome)); }

 private:
  Done done_;
};

// A command on one existing account (deposit, withdrawal, close, ...): load, decide, append.
class CommandHandler::AccountOperation final : public OperationWith<CommandOutcome> {
 public:
  AccountOperation(CommandHandler* handler, std::unique_ptr<const AccountCommand> command,
                   CommandContext context, CommandDone done)
      : OperationWith(handler, std::move(context), std::move(done)),
        command_(std::move(command)),
        stream_(AccountStream(command_->account_id())) {}

  absl::Status Prepare(storage::AppendRequest& request) override {
    ASSIGN_OR_RETURN(state_, handler_->Load(command_->account_id()));
    if (context_.expected_version && *context_.expected_version != state_.version) {
      return ExpectedVersionMismatch(stream_, *context_.expected_version, state_.version);
    }
    ASSIGN_OR_RETURN(events_, command_->Decide(state_));
    storage::StreamAppend& append = request.streams.emplace_back();
    append.stream_id = stream_;
    append.expected_version = state_.version;
    for (const NewEvent& event : events_) {
      append.events.push_back(handler_->ToAppend(event, context_));
    }
    SetOptions(request);
    return absl::OkStatus();
  }
  void Commit(const storage::AppendResult& result) override {
    if (!result.deduplicated) {
      const int64_t previous = state_.version;
      if (absl::Status applied = ApplyAll(state_, events_); !applied.ok()) return Finish(applied);
      handler_->Remember(state_);
      handler_->MaybeSnapshot(state_, previous);
    }
    Finish(OutcomeFor(result, stream_));
  }
  void Repeat(const storage::AppendResult& earlier) override {
    Finish(OutcomeFor(earlier, stream_));
  }
  bool Retry(const absl::Status& status) override {
    if (status.code() != absl::StatusCode::kAborted) return false;
    handler_->ForgetAfterConflict(command_->account_id(), status);
    return !context_.expected_version;  // A version the caller named is not decided again.
  }
  absl::Status Contention() const override {
    return absl::AbortedError(StrCat("account ", command_->account_id(),
                                     " is under heavy contention; retry the command"));
  }
  void ForgetCached() override { handler_->Forget(command_->account_id()); }

 private:
  const std::unique_ptr<const AccountCommand> command_;
  const std::string stream_;
  // What the current attempt loaded and decided.
  AccountState state_;
  std::vector<NewEvent> events_;
};

// Opening an account: its first events and the account number's reservation, in one append.
class CommandHandler::OpenOperation final : public OperationWith<CommandOutcome> {
 public:
  OpenOperation(CommandHandler* handler, OpenAccountCommand command, CommandContext context,
                CommandDone done)
      : OperationWith(handler, std::move(context), std::move(done)),
        command_(std::move(command)),
        reservation_stream_(AccountNumberStream(command_.account_number)) {}

  absl::Status Prepare(storage::AppendRequest& request) override {
    if (context_.expected_version && *context_.expected_version != 0) {
      return absl::AbortedError(StrCat("a new account's stream is at version 0, expected version ",
                                       *context_.expected_version));
    }
    ASSIGN_OR_RETURN(events_, DecideOpen(AccountState{}, command_));
    request.streams.reserve(2);
    storage::StreamAppend& account = request.streams.emplace_back();
    account.stream_id = AccountStream(command_.account_id);
    account.expected_version = storage::kExpectNoStream;
    for (const NewEvent& event : events_) {
      account.events.push_back(handler_->ToAppend(event, context_));
    }
    storage::StreamAppend& reservation = request.streams.emplace_back();
    reservation.stream_id = reservation_stream_;
    reservation.expected_version = storage::kExpectNoStream;
    reservation.events.push_back(handler_->ToAppend(AccountNumberReservation(command_), context_));
    SetOptions(request);
    return absl::OkStatus();
  }
  void Commit(const storage::AppendResult& result) override {
    if (!result.deduplicated) {
      AccountState state;
      if (absl::Status applied = ApplyAll(state, events_); !applied.ok()) return Finish(applied);
      handler_->Remember(state);
    }
    Finish(OutcomeFor(result, ""));
  }
  void Repeat(const storage::AppendResult& earlier) override { Finish(OutcomeFor(earlier, "")); }
  absl::Status MapError(const absl::Status& status) override {
    auto conflict = status.GetPayload(storage::kConflictStreamPayloadKey);
    if (status.code() == absl::StatusCode::kAborted && conflict &&
        std::string(*conflict) == reservation_stream_) {
      return absl::AlreadyExistsError(
          StrCat("an account with account_number ", command_.account_number, " already exists"));
    }
    return MapAppendError(status);
  }

 private:
  const OpenAccountCommand command_;
  const std::string reservation_stream_;
  std::vector<NewEvent> events_;
};

// A transfer: a debit and a credit on two accounts, in one append.
class CommandHandler::TransferOperation final : public OperationWith<TransferOutcome> {
 public:
  TransferOperation(CommandHandler* handler, TransferCommand command, CommandContext context,
                    std::optional<int64_t> from_expected, std::optional<int64_t> to_expected,
                    TransferDone done)
      : OperationWith(handler, std::move(context), std::move(done)),
        command_(std::move(command)),
        from_stream_(AccountStream(command_.from_account_id)),
        to_stream_(AccountStream(command_.to_account_id)),
        from_expected_(from_expected),
        to_expected_(to_expected) {
    command_.transfer_id = NewId();
  }

  absl::Status Prepare(storage::AppendRequest& request) override {
    ASSIGN_OR_RETURN(from_, handler_->Load(command_.from_account_id));
    ASSIGN_OR_RETURN(to_, handler_->Load(command_.to_account_id));
    if (from_expected_ && *from_expected_ != from_.version) {
      return ExpectedVersionMismatch(from_stream_, *from_expected_, from_.version);
    }
    if (to_expected_ && *to_expected_ != to_.version) {
      return ExpectedVersionMismatch(to_stream_, *to_expected_, to_.version);
    }
    ASSIGN_OR_RETURN(events_, DecideTransfer(from_, to_, command_));
    CommandContext event_context = context_;
    if (event_context.correlation_id.empty()) event_context.correlation_id = command_.transfer_id;
    request.streams.reserve(2);
    storage::StreamAppend& debit = request.streams.emplace_back();
    debit.stream_id = from_stream_;
    debit.expected_version = from_.version;
    debit.events.push_back(handler_->ToAppend(events_.debit, event_context));
    storage::StreamAppend& credit = request.streams.emplace_back();
    credit.stream_id = to_stream_;
    credit.expected_version = to_.version;
    credit.events.push_back(handler_->ToAppend(events_.credit, event_context));
    SetOptions(request);
    return absl::OkStatus();
  }
  void Commit(const storage::AppendResult& result) override {
    if (!result.deduplicated) {
      const int64_t from_previous = from_.version, to_previous = to_.version;
      absl::Status applied = ApplyAccountEvent(from_, events_.debit.type, *events_.debit.payload);
      if (applied.ok()) {
        applied = ApplyAccountEvent(to_, events_.credit.type, *events_.credit.payload);
      }
      if (!applied.ok()) return Finish(applied);
      handler_->Remember(from_);
      handler_->Remember(to_);
      handler_->MaybeSnapshot(from_, from_previous);
      handler_->MaybeSnapshot(to_, to_previous);
    }
    Finish(OutcomeOf(result, command_.transfer_id));
  }
  void Repeat(const storage::AppendResult& earlier) override {
    // The transfer id lives in the events; read it back from the debit.
    absl::StatusOr<std::vector<v1::StoredEvent>> debit =
        handler_->store_->ReadAll(earlier.first_position, 1);
    if (!debit.ok()) return Finish(debit.status());
    v1::TransferDebited payload;
    std::string transfer_id;
    if (!debit->empty() && payload.ParseFromString((*debit)[0].payload())) {
      transfer_id = payload.transfer_id();
    }
    Finish(OutcomeOf(earlier, std::move(transfer_id)));
  }
  bool Retry(const absl::Status& status) override {
    if (status.code() != absl::StatusCode::kAborted) return false;
    handler_->ForgetAfterConflict(command_.from_account_id, status);
    handler_->ForgetAfterConflict(command_.to_account_id, status);
    return !from_expected_ && !to_expected_;  // Versions the caller named are not decided again.
  }
  absl::Status Contention() const override {
    return absl::AbortedError("the accounts are under heavy contention; retry the transfer");
  }
  void ForgetCached() override {
    handler_->Forget(command_.from_account_id);
    handler_->Forget(command_.to_account_id);
  }

 private:
  TransferOutcome OutcomeOf(const storage::AppendResult& result, std::string transfer_id) const {
    TransferOutcome outcome;
    outcome.transfer_id = std::move(transfer_id);
    outcome.deduplicated = result.deduplicated;
    outcome.debit_position = result.first_position;
    outcome.credit_position = result.last_position;
    for (const auto& stream : result.streams) {
      if (stream.stream_id() == from_stream_) outcome.from_version = stream.version();
      if (stream.stream_id() == to_stream_) outcome.to_version = stream.version();
    }
    return outcome;
  }

  TransferCommand command_;
  const std::string from_stream_;
  const std::string to_stream_;
  const std::optional<int64_t> from_expected_;
  const std::optional<int64_t> to_expected_;
  // What the current attempt loaded and decided.
  AccountState from_, to_;
  TransferEvents events_;
};

void CommandHandler::Start(std::unique_ptr<Operation> op) {
  absl::StatusOr<std::optional<storage::AppendResult>> earlier =
      FindEarlier(*store_, op->context());
  if (!earlier.ok()) return op->Fail(earlier.status());
  if (earlier->has_value()) return op->Repeat(**earlier);
  Attempt(std::move(op));
}

void CommandHandler::Attempt(std::unique_ptr<Operation> op) {
  storage::AppendRequest request;
  absl::Status prepared = op->Prepare(request);
  if (IsRejection(prepared) && store_->shared() && !op->confirmed) {
    // Decided on what this node holds, which other nodes' appends may not have reached yet,
    // and on cached state they do not update: a rejection stands only once decided again on
    // everything the log of record acknowledged before now.
    op->confirmed = true;
    const absl::Duration left = op->context().deadline - clock_->Now();
    absl::Status caught_up = store_->CatchUp(std::min(left, kMaxCatchUp));
    if (!caught_up.ok()) {
      return op->Fail(absl::UnavailableError(StrCat(
          "the command would be refused (", prepared.message(),
          ") but this node cannot check that against the log of record: ", caught_up.message(),
          "; nothing was appended")));
    }
    op->ForgetCached();
    return Start(std::move(op));
  }
  if (prepared.ok()) prepared = CheckDeadline(op->context().deadline);
  if (!prepared.ok()) return op->Fail(std::move(prepared));
  store_->AppendAsync(
      std::move(request),
      [this, op = std::move(op)](absl::StatusOr<storage::AppendResult> result) mutable {
        if (result.ok()) return op->Commit(*result);
        if (!op->Retry(result.status())) return op->Fail(op->MapError(result.status()));
        if (++op->attempts < kMaxAttempts) return Attempt(std::move(op));
        op->Fail(op->Contention());
      });
}

absl::Status CommandHandler::CheckDeadline(absl::Time deadline) const {
  if (clock_->Now() >= deadline) {
    return absl::DeadlineExceededError("the call's deadline passed before the command was written");
  }
  return absl::OkStatus();
}

void CommandHandler::ExecuteAsync(std::unique_ptr<const AccountCommand> command,
                                  CommandContext context, CommandDone done) {
  if (absl::Status valid = command->Validate(); !valid.ok()) {
    return std::move(done)(std::move(valid));
  }
  Start(std::make_unique<AccountOperation>(this, std::move(command), std::move(context),
                                           std::move(done)));
}

void CommandHandler::OpenAsync(OpenAccountCommand command, CommandContext context,
                               CommandDone done) {
  command.account_id = NewId();
  if (absl::Status valid = ValidateOpen(command); !valid.ok()) {
    return std::move(done)(std::move(valid));
  }
  Start(std::make_unique<OpenOperation>(this, std::move(command), std::move(context),
                                        std::move(done)));
}

void CommandHandler::TransferAsync(TransferCommand command, CommandContext context,
                                   std::optional<int64_t> from_expected,
                                   std::optional<int64_t> to_expected, TransferDone done) {
  absl::Status valid = ValidateTransfer(command);
  for (auto [field, value] : {std::pair{"from_expected_version", from_expected},
                              std::pair{"to_expected_version", to_expected}}) {
    if (valid.ok() && value && *value < 0) valid = InvalidField(field, "must not be negative");
  }
  if (!valid.ok()) return std::move(done)(std::move(valid));
  Start(std::make_unique<TransferOperation>(this, std::move(command), std::move(context),
                                            from_expected, to_expected, std::move(done)));
}

absl::StatusOr<CommandOutcome> CommandHandler::Execute(
    std::unique_ptr<const AccountCommand> command, const CommandContext& context) {
  return Wait<CommandOutcome>(
      [&](CommandDone done) { ExecuteAsync(std::move(command), context, std::move(done)); });
}

absl::StatusOr<CommandOutcome> CommandHandler::Open(OpenAccountCommand command,
                                                    const CommandContext& context) {
  return Wait<CommandOutcome>(
      [&](CommandDone done) { OpenAsync(std::move(command), context, std::move(done)); });
}

absl::StatusOr<TransferOutcome> CommandHandler::Transfer(TransferCommand command,
                                                         const CommandContext& context,
                                                         std::optional<int64_t> from_expected,
                                                         std::optional<int64_t> to_expected) {
  return Wait<TransferOutcome>([&](TransferDone done) {
    TransferAsync(std::move(command), context, from_expected, to_expected, std::move(done));
  });
}

}  // namespace fidelis::server
