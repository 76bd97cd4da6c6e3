#include "server/command_handler.h"

#include <random>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "domain/errors.h"
#include "domain/event_types.h"
#include "domain/status_macros.h"
#include "domain/strings.h"

namespace fidelis::server {
namespace {

// Conflicts the server resolves by reloading and deciding again before giving up.
constexpr int kMaxAttempts = 100;

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

absl::Status CheckDeadline(absl::Time deadline) {
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError("the call's deadline passed before the command was written");
  }
  return absl::OkStatus();
}

// The store reports a reused command_id as ALREADY_EXISTS; to the caller it is bad input.
absl::Status MapAppendError(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kAlreadyExists) {
    return InvalidField("options.command_id",
                        "was already used for a different request; use a new command_id");
  }
  return status;
}

absl::Status ExpectedVersionMismatch(std::string_view stream, int64_t expected, int64_t actual) {
  return absl::AbortedError(StrCat("version conflict on stream ", stream, ": expected version ",
                                   expected, ", current version is ", actual));
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

// A command in flight, shared by the attempt being written and the callbacks that follow it.
// Only one thread uses it at a time: the caller's for the first attempt, then the writer's.
struct CommandHandler::Operation {
  // Loads, checks and decides against the current state, and fills `request`. A non-OK status
  // ends the command with that status.
  std::function<absl::Status(storage::AppendRequest& request)> prepare;
  // Ends the command after its append succeeded.
  std::function<void(const storage::AppendResult& result)> commit;
  // Ends the command with an error.
  std::function<void(absl::Status status)> fail;
  // Whether an append error is a conflict to decide again; forgets what was cached. Default:
  // never.
  std::function<bool(const absl::Status& status)> retry = [](const absl::Status&) { return false; };
  // The caller's status for an append error that is not retried.
  std::function<absl::Status(const absl::Status& status)> map_error = MapAppendError;
  absl::Time deadline = absl::InfiniteFuture();
  std::string contention_message;
  int attempts = 0;
};

std::string HexId(uint64_t a, uint64_t b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(a >> (i * 4)) & 0xF];
    id[16 + i] = kHex[(b >> (i * 4)) & 0xF];
  }
  return id;
}

std::string NewId() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   (static_cast<uint64_t>(std::random_device{}()) << 32)};
  const uint64_t a = rng();
  return HexId(a, rng());
}

absl::Status ValidateContext(const CommandContext& context) {
  RETURN_IF_ERROR(ValidateText("options.command_id", context.command_id, kMaxIdLength, false));
  RETURN_IF_ERROR(
      ValidateText("options.correlation_id", context.correlation_id, kMaxIdLength, false));
  RETURN_IF_ERROR(ValidateText("options.causation_id", context.causation_id, kMaxIdLength, false));
  if (context.expected_version && *context.expected_version < 0) {
    return InvalidField("options.expected_version",
                        StrCat("must not be negative, got ", *context.expected_version));
  }
  return absl::OkStatus();
}

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

absl::StatusOr<std::optional<storage::AppendResult>> CommandHandler::Deduplicate(
    const CommandContext& context) {
  if (context.command_id.empty()) return std::nullopt;
  ASSIGN_OR_RETURN(std::optional<v1::CommandRecord> record,
                   store_->FindCommand(context.command_id));
  if (!record) return std::nullopt;
  if (record->fingerprint() != context.fingerprint) {
    return MapAppendError(absl::AlreadyExistsError("command_id reused"));
  }
  storage::AppendResult result;
  result.first_position = record->first_position();
  result.last_position = record->last_position();
  result.streams.assign(record->streams().begin(), record->streams().end());
  result.deduplicated = true;
  return result;
}

void CommandHandler::Attempt(std::shared_ptr<Operation> op) {
  storage::AppendRequest request;
  absl::Status prepared = op->prepare(request);
  if (prepared.ok()) prepared = CheckDeadline(op->deadline);
  if (!prepared.ok()) {
    op->fail(std::move(prepared));
    return;
  }
  store_->AppendAsync(
      std::move(request),
      [this, op = std::move(op)](absl::StatusOr<storage::AppendResult> result) mutable {
        if (result.ok()) {
          op->commit(*result);
        } else if (!op->retry(result.status())) {
          op->fail(op->map_error(result.status()));
        } else if (++op->attempts < kMaxAttempts) {
          Attempt(std::move(op));
        } else {
          op->fail(absl::AbortedError(op->contention_message));
        }
      });
}

void CommandHandler::Execute(std::string account_id, const CommandContext& context, Decider decide,
                             CommandDone done) {
  auto finish = std::make_shared<CommandDone>(std::move(done));
  std::string stream = AccountStream(account_id);
  absl::StatusOr<std::optional<storage::AppendResult>> earlier = Deduplicate(context);
  if (!earlier.ok() || earlier->has_value()) {
    std::move (*finish)(earlier.ok() ? absl::StatusOr<CommandOutcome>(OutcomeFor(**earlier, stream))
                                     : earlier.status());
    return;
  }
  // What one attempt decided, for its commit.
  struct Decision {
    AccountState state;
    std::vector<NewEvent> events;
  };
  auto decision = std::make_shared<Decision>();
  auto op = std::make_shared<Operation>();
  op->prepare = [this, account_id, stream, context, decide = std::move(decide),
                 decision](storage::AppendRequest& request) -> absl::Status {
    ASSIGN_OR_RETURN(decision->state, Load(account_id));
    const AccountState& state = decision->state;
    if (context.expected_version && *context.expected_version != state.version) {
      return ExpectedVersionMismatch(stream, *context.expected_version, state.version);
    }
    ASSIGN_OR_RETURN(decision->events, decide(state));
    storage::StreamAppend& append = request.streams.emplace_back();
    append.stream_id = stream;
    append.expected_version = state.version;
    for (const NewEvent& event : decision->events) {
      append.events.push_back(ToAppend(event, context));
    }
    request.command_id = context.command_id;
    request.fingerprint = context.fingerprint;
    return absl::OkStatus();
  };
  op->commit = [this, stream, decision, finish](const storage::AppendResult& result) {
    if (!result.deduplicated) {
      AccountState& state = decision->state;
      const int64_t previous = state.version;
      for (const NewEvent& event : decision->events) {
        absl::Status applied = ApplyAccountEvent(state, event.type, *event.payload);
        if (!applied.ok()) {
          std::move (*finish)(std::move(applied));
          return;
        }
      }
      Remember(state);
      MaybeSnapshot(state, previous);
    }
    std::move (*finish)(OutcomeFor(result, stream));
  };
  op->fail = [finish](absl::Status status) { std::move (*finish)(std::move(status)); };
  op->retry = [this, account_id,
               expected = context.expected_version.has_value()](const absl::Status& status) {
    if (status.code() != absl::StatusCode::kAborted) return false;
    Forget(account_id);
    return !expected;
  };
  op->deadline = context.deadline;
  op->contention_message =
      StrCat("account ", account_id, " is under heavy contention; retry the command");
  Attempt(std::move(op));
}

void CommandHandler::OpenAsync(OpenAccountCommand command, const CommandContext& context,
                               CommandDone done) {
  command.account_id = NewId();
  auto finish = std::make_shared<CommandDone>(std::move(done));
  auto fail = [finish](absl::Status status) { std::move (*finish)(std::move(status)); };
  if (absl::Status valid = Validate(command); !valid.ok()) return fail(std::move(valid));
  absl::StatusOr<std::optional<storage::AppendResult>> earlier = Deduplicate(context);
  if (!earlier.ok()) return fail(earlier.status());
  if (earlier->has_value()) return std::move(*finish)(OutcomeFor(**earlier, ""));
  if (context.expected_version && *context.expected_version != 0) {
    return fail(absl::AbortedError(StrCat(
        "a new account's stream is at version 0, expected version ", *context.expected_version)));
  }
  absl::StatusOr<std::vector<NewEvent>> decided = DecideOpen(AccountState{}, command);
  if (!decided.ok()) return fail(decided.status());
  auto events = std::make_shared<std::vector<NewEvent>>(std::move(*decided));
  auto op = std::make_shared<Operation>();
  std::string reservation_stream = AccountNumberStream(command.account_number);
  op->prepare = [this, command, context, events,
                 reservation_stream](storage::AppendRequest& request) {
    request.streams.reserve(2);
    storage::StreamAppend& account = request.streams.emplace_back();
    account.stream_id = AccountStream(command.account_id);
    account.expected_version = storage::kExpectNoStream;
    for (const NewEvent& event : *events) account.events.push_back(ToAppend(event, context));
    storage::StreamAppend& reservation = request.streams.emplace_back();
    reservation.stream_id = reservation_stream;
    reservation.expected_version = storage::kExpectNoStream;
    reservation.events.push_back(ToAppend(AccountNumberReservation(command), context));
    request.command_id = context.command_id;
    request.fingerprint = context.fingerprint;
    return absl::OkStatus();
  };
  op->commit = [this, events, finish](const storage::AppendResult& result) {
    if (!result.deduplicated) {
      AccountState state;
      for (const NewEvent& event : *events) {
        absl::Status applied = ApplyAccountEvent(state, event.type, *event.payload);
        if (!applied.ok()) {
          std::move (*finish)(std::move(applied));
          return;
        }
      }
      Remember(state);
    }
    std::move (*finish)(OutcomeFor(result, ""));
  };
  op->fail = fail;
  op->map_error = [reservation_stream,
                   number = command.account_number](const absl::Status& status) -> absl::Status {
    auto conflict = status.GetPayload(storage::kConflictStreamPayloadKey);
    if (status.code() == absl::StatusCode::kAborted && conflict &&
        std::string(*conflict) == reservation_stream) {
      return absl::AlreadyExistsError(
          StrCat("an account with account_number ", number, " already exists"));
    }
    return MapAppendError(status);
  };
  op->deadline = context.deadline;
  Attempt(std::move(op));
}

void CommandHandler::DepositAsync(DepositCommand command, const CommandContext& context,
                                  CommandDone done) {
  if (absl::Status valid = ValidateDeposit(command); !valid.ok()) {
    return std::move(done)(std::move(valid));
  }
  std::string account_id = command.account_id;
  Execute(
      std::move(account_id), context,
      [command = std::move(command)](const AccountState& state) {
        return DecideDeposit(state, command);
      },
      std::move(done));
}

void CommandHandler::WithdrawAsync(WithdrawalCommand command, const CommandContext& context,
                                   CommandDone done) {
  if (absl::Status valid = ValidateWithdrawal(command); !valid.ok()) {
    return std::move(done)(std::move(valid));
  }
  std::string account_id = command.account_id;
  Execute(
      std::move(account_id), context,
      [command = std::move(command)](const AccountState& state) {
        return DecideWithdrawal(state, command);
      },
      std::move(done));
}

void CommandHandler::CloseAsync(CloseAccountCommand command, const CommandContext& context,
                                CommandDone done) {
  if (absl::Status valid = Validate(command); !valid.ok()) {
    return std::move(done)(std::move(valid));
  }
  std::string account_id = command.account_id;
  Execute(
      std::move(account_id), context,
      [command = std::move(command)](const AccountState& state) {
        return DecideClose(state, command);
      },
      std::move(done));
}

void CommandHandler::TransferAsync(TransferCommand command, const CommandContext& context,
                                   std::optional<int64_t> from_expected,
                                   std::optional<int64_t> to_expected, TransferDone done) {
  auto finish = std::make_shared<TransferDone>(std::move(done));
  auto fail = [finish](absl::Status status) { std::move (*finish)(std::move(status)); };
  if (absl::Status valid = Validate(command); !valid.ok()) return fail(std::move(valid));
  for (auto [field, value] : {std::pair{"from_expected_version", from_expected},
                              std::pair{"to_expected_version", to_expected}}) {
    if (value && *value < 0) return fail(InvalidField(field, "must not be negative"));
  }
  const std::string from_stream = AccountStream(command.from_account_id);
  const std::string to_stream = AccountStream(command.to_account_id);
  auto outcome_of = [from_stream, to_stream](const storage::AppendResult& result,
                                             std::string transfer_id) {
    TransferOutcome outcome;
    outcome.transfer_id = std::move(transfer_id);
    outcome.deduplicated = result.deduplicated;
    outcome.debit_position = result.first_position;
    outcome.credit_position = result.last_position;
    for (const auto& stream : result.streams) {
      if (stream.stream_id() == from_stream) outcome.from_version = stream.version();
      if (stream.stream_id() == to_stream) outcome.to_version = stream.version();
    }
    return outcome;
  };
  absl::StatusOr<std::optional<storage::AppendResult>> earlier = Deduplicate(context);
  if (!earlier.ok()) return fail(earlier.status());
  if (earlier->has_value()) {
    // The transfer id lives in the events; read it back from the debit.
    absl::StatusOr<std::vector<v1::StoredEvent>> debit =
        store_->ReadAll((*earlier)->first_position, 1);
    if (!debit.ok()) return fail(debit.status());
    v1::TransferDebited payload;
    std::string transfer_id;
    if (!debit->empty() && payload.ParseFromString((*debit)[0].payload())) {
      transfer_id = payload.transfer_id();
    }
    return std::move(*finish)(outcome_of(**earlier, std::move(transfer_id)));
  }
  command.transfer_id = NewId();
  struct Decision {
    AccountState from, to;
    TransferEvents events;
  };
  auto decision = std::make_shared<Decision>();
  auto op = std::make_shared<Operation>();
  op->prepare = [this, command, context, from_expected, to_expected, from_stream, to_stream,
                 decision](storage::AppendRequest& request) -> absl::Status {
    ASSIGN_OR_RETURN(decision->from, Load(command.from_account_id));
    ASSIGN_OR_RETURN(decision->to, Load(command.to_account_id));
    const AccountState& from = decision->from;
    const AccountState& to = decision->to;
    if (from_expected && *from_expected != from.version) {
      return ExpectedVersionMismatch(from_stream, *from_expected, from.version);
    }
    if (to_expected && *to_expected != to.version) {
      return ExpectedVersionMismatch(to_stream, *to_expected, to.version);
    }
    ASSIGN_OR_RETURN(decision->events, DecideTransfer(from, to, command));
    CommandContext event_context = context;
    if (event_context.correlation_id.empty()) event_context.correlation_id = command.transfer_id;
    request.streams.reserve(2);
    storage::StreamAppend& debit = request.streams.emplace_back();
    debit.stream_id = from_stream;
    debit.expected_version = from.version;
    debit.events.push_back(ToAppend(decision->events.debit, event_context));
    storage::StreamAppend& credit = request.streams.emplace_back();
    credit.stream_id = to_stream;
    credit.expected_version = to.version;
    credit.events.push_back(ToAppend(decision->events.credit, event_context));
    request.command_id = context.command_id;
    request.fingerprint = context.fingerprint;
    return absl::OkStatus();
  };
  op->commit = [this, decision, finish, outcome_of,
                transfer_id = command.transfer_id](const storage::AppendResult& result) {
    if (!result.deduplicated) {
      AccountState& from = decision->from;
      AccountState& to = decision->to;
      const int64_t from_previous = from.version, to_previous = to.version;
      absl::Status applied =
          ApplyAccountEvent(from, decision->events.debit.type, *decision->events.debit.payload);
      if (applied.ok()) {
        applied =
            ApplyAccountEvent(to, decision->events.credit.type, *decision->events.credit.payload);
      }
      if (!applied.ok()) {
        std::move (*finish)(std::move(applied));
        return;
      }
      Remember(from);
      Remember(to);
      MaybeSnapshot(from, from_previous);
      MaybeSnapshot(to, to_previous);
    }
    std::move (*finish)(outcome_of(result, transfer_id));
  };
  op->fail = fail;
  op->retry = [this, from_id = command.from_account_id, to_id = command.to_account_id,
               expected = from_expected || to_expected](const absl::Status& status) {
    if (status.code() != absl::StatusCode::kAborted) return false;
    Forget(from_id);
    Forget(to_id);
    return !expected;
  };
  op->deadline = context.deadline;
  op->contention_message = "the accounts are under heavy contention; retry the transfer";
  Attempt(std::move(op));
}

absl::StatusOr<CommandOutcome> CommandHandler::Open(OpenAccountCommand command,
                                                    const CommandContext& context) {
  return Wait<CommandOutcome>(
      [&](CommandDone done) { OpenAsync(std::move(command), context, std::move(done)); });
}

absl::StatusOr<CommandOutcome> CommandHandler::Deposit(const DepositCommand& command,
                                                       const CommandContext& context) {
  return Wait<CommandOutcome>(
      [&](CommandDone done) { DepositAsync(command, context, std::move(done)); });
}

absl::StatusOr<CommandOutcome> CommandHandler::Withdraw(const WithdrawalCommand& command,
                                                        const CommandContext& context) {
  return Wait<CommandOutcome>(
      [&](CommandDone done) { WithdrawAsync(command, context, std::move(done)); });
}

absl::StatusOr<CommandOutcome> CommandHandler::Close(const CloseAccountCommand& command,
                                                     const CommandContext& context) {
  return Wait<CommandOutcome>(
      [&](CommandDone done) { CloseAsync(command, context, std::move(done)); });
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
