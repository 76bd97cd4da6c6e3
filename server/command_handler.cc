#include "server/command_handler.h"

#include <random>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
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

absl::Status CheckDeadline(const CommandContext& context) {
  if (absl::Now() >= context.deadline) {
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

}  // namespace

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

absl::StatusOr<CommandOutcome> CommandHandler::Execute(const std::string& account_id,
                                                       const CommandContext& context,
                                                       const Decider& decide) {
  ASSIGN_OR_RETURN(std::optional<storage::AppendResult> earlier, Deduplicate(context));
  const std::string stream = AccountStream(account_id);
  if (earlier) return OutcomeFor(*earlier, stream);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    ASSIGN_OR_RETURN(AccountState state, Load(account_id));
    if (context.expected_version && *context.expected_version != state.version) {
      return ExpectedVersionMismatch(stream, *context.expected_version, state.version);
    }
    ASSIGN_OR_RETURN(std::vector<NewEvent> events, decide(state));
    storage::AppendRequest request;
    storage::StreamAppend& append = request.streams.emplace_back();
    append.stream_id = stream;
    append.expected_version = state.version;
    for (const NewEvent& event : events) append.events.push_back(ToAppend(event, context));
    request.command_id = context.command_id;
    request.fingerprint = context.fingerprint;
    RETURN_IF_ERROR(CheckDeadline(context));
    absl::StatusOr<storage::AppendResult> result = store_->Append(std::move(request));
    if (result.ok()) {
      if (!result->deduplicated) {
        const int64_t previous = state.version;
        for (const NewEvent& event : events) {
          RETURN_IF_ERROR(ApplyAccountEvent(state, event.type, *event.payload));
        }
        Remember(state);
        MaybeSnapshot(state, previous);
      }
      return OutcomeFor(*result, stream);
    }
    if (result.status().code() != absl::StatusCode::kAborted) {
      return MapAppendError(result.status());
    }
    Forget(account_id);
    if (context.expected_version) return result.status();
  }
  return absl::AbortedError(
      StrCat("account ", account_id, " is under heavy contention; retry the command"));
}

absl::StatusOr<CommandOutcome> CommandHandler::Open(OpenAccountCommand command,
                                                    const CommandContext& context) {
  command.account_id = NewId();
  RETURN_IF_ERROR(Validate(command));
  ASSIGN_OR_RETURN(std::optional<storage::AppendResult> earlier, Deduplicate(context));
  if (earlier) return OutcomeFor(*earlier, "");
  if (context.expected_version && *context.expected_version != 0) {
    return absl::AbortedError(StrCat("a new account's stream is at version 0, expected version ",
                                     *context.expected_version));
  }
  ASSIGN_OR_RETURN(std::vector<NewEvent> events, DecideOpen(AccountState{}, command));
  storage::AppendRequest request;
  request.streams.reserve(2);
  const std::string stream = AccountStream(command.account_id);
  storage::StreamAppend& account = request.streams.emplace_back();
  account.stream_id = stream;
  account.expected_version = storage::kExpectNoStream;
  for (const NewEvent& event : events) account.events.push_back(ToAppend(event, context));
  const std::string reservation_stream = AccountNumberStream(command.account_number);
  storage::StreamAppend& reservation = request.streams.emplace_back();
  reservation.stream_id = reservation_stream;
  reservation.expected_version = storage::kExpectNoStream;
  reservation.events.push_back(ToAppend(AccountNumberReservation(command), context));
  request.command_id = context.command_id;
  request.fingerprint = context.fingerprint;
  RETURN_IF_ERROR(CheckDeadline(context));
  absl::StatusOr<storage::AppendResult> result = store_->Append(std::move(request));
  if (!result.ok()) {
    auto conflict = result.status().GetPayload(storage::kConflictStreamPayloadKey);
    if (result.status().code() == absl::StatusCode::kAborted && conflict &&
        std::string(*conflict) == reservation_stream) {
      return absl::AlreadyExistsError(
          StrCat("an account with account_number ", command.account_number, " already exists"));
    }
    return MapAppendError(result.status());
  }
  if (!result->deduplicated) {
    AccountState state;
    for (const NewEvent& event : events) {
      RETURN_IF_ERROR(ApplyAccountEvent(state, event.type, *event.payload));
    }
    Remember(state);
  }
  return OutcomeFor(*result, "");
}

absl::StatusOr<CommandOutcome> CommandHandler::Deposit(const DepositCommand& command,
                                                       const CommandContext& context) {
  RETURN_IF_ERROR(ValidateDeposit(command));
  return Execute(command.account_id, context,
                 [&command](const AccountState& state) { return DecideDeposit(state, command); });
}

absl::StatusOr<CommandOutcome> CommandHandler::Withdraw(const WithdrawalCommand& command,
                                                        const CommandContext& context) {
  RETURN_IF_ERROR(ValidateWithdrawal(command));
  return Execute(command.account_id, context, [&command](const AccountState& state) {
    return DecideWithdrawal(state, command);
  });
}

absl::StatusOr<CommandOutcome> CommandHandler::Close(const CloseAccountCommand& command,
                                                     const CommandContext& context) {
  RETURN_IF_ERROR(Validate(command));
  return Execute(command.account_id, context,
                 [&command](const AccountState& state) { return DecideClose(state, command); });
}

absl::StatusOr<TransferOutcome> CommandHandler::Transfer(TransferCommand command,
                                                         const CommandContext& context,
                                                         std::optional<int64_t> from_expected,
                                                         std::optional<int64_t> to_expected) {
  RETURN_IF_ERROR(Validate(command));
  for (auto [field, value] : {std::pair{"from_expected_version", from_expected},
                              std::pair{"to_expected_version", to_expected}}) {
    if (value && *value < 0) return InvalidField(field, "must not be negative");
  }
  const std::string from_stream = AccountStream(command.from_account_id);
  const std::string to_stream = AccountStream(command.to_account_id);
  auto outcome_of = [&](const storage::AppendResult& result) {
    TransferOutcome outcome;
    outcome.transfer_id = command.transfer_id;
    outcome.deduplicated = result.deduplicated;
    outcome.debit_position = result.first_position;
    outcome.credit_position = result.last_position;
    for (const auto& stream : result.streams) {
      if (stream.stream_id() == from_stream) outcome.from_version = stream.version();
      if (stream.stream_id() == to_stream) outcome.to_version = stream.version();
    }
    return outcome;
  };
  ASSIGN_OR_RETURN(std::optional<storage::AppendResult> earlier, Deduplicate(context));
  if (earlier) {
    // The transfer id lives in the events; read it back from the debit.
    ASSIGN_OR_RETURN(std::vector<v1::StoredEvent> debit,
                     store_->ReadAll(earlier->first_position, 1));
    v1::TransferDebited payload;
    if (!debit.empty() && payload.ParseFromString(debit[0].payload())) {
      command.transfer_id = payload.transfer_id();
    }
    return outcome_of(*earlier);
  }
  command.transfer_id = NewId();
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    ASSIGN_OR_RETURN(AccountState from, Load(command.from_account_id));
    ASSIGN_OR_RETURN(AccountState to, Load(command.to_account_id));
    if (from_expected && *from_expected != from.version) {
      return ExpectedVersionMismatch(from_stream, *from_expected, from.version);
    }
    if (to_expected && *to_expected != to.version) {
      return ExpectedVersionMismatch(to_stream, *to_expected, to.version);
    }
    ASSIGN_OR_RETURN(TransferEvents events, DecideTransfer(from, to, command));
    CommandContext event_context = context;
    if (event_context.correlation_id.empty()) event_context.correlation_id = command.transfer_id;
    storage::AppendRequest request;
    request.streams.reserve(2);
    storage::StreamAppend& debit = request.streams.emplace_back();
    debit.stream_id = from_stream;
    debit.expected_version = from.version;
    debit.events.push_back(ToAppend(events.debit, event_context));
    storage::StreamAppend& credit = request.streams.emplace_back();
    credit.stream_id = to_stream;
    credit.expected_version = to.version;
    credit.events.push_back(ToAppend(events.credit, event_context));
    request.command_id = context.command_id;
    request.fingerprint = context.fingerprint;
    RETURN_IF_ERROR(CheckDeadline(context));
    absl::StatusOr<storage::AppendResult> result = store_->Append(std::move(request));
    if (result.ok()) {
      if (!result->deduplicated) {
        const int64_t from_previous = from.version, to_previous = to.version;
        RETURN_IF_ERROR(ApplyAccountEvent(from, events.debit.type, *events.debit.payload));
        RETURN_IF_ERROR(ApplyAccountEvent(to, events.credit.type, *events.credit.payload));
        Remember(from);
        Remember(to);
        MaybeSnapshot(from, from_previous);
        MaybeSnapshot(to, to_previous);
      }
      return outcome_of(*result);
    }
    if (result.status().code() != absl::StatusCode::kAborted) {
      return MapAppendError(result.status());
    }
    Forget(command.from_account_id);
    Forget(command.to_account_id);
    if (from_expected || to_expected) return result.status();
  }
  return absl::AbortedError("the accounts are under heavy contention; retry the transfer");
}

}  // namespace fidelis::server
