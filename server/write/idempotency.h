// Idempotency, in one place: what identifies a command for a retry, and how a retry is
// answered.
//
// A command may carry a command_id (CommandOptions). Its fingerprint is the method's name and
// the deterministic encoding of the request without its options, so the same command sent
// alone or inside ExecuteCommands is the same command. The store records (command_id,
// fingerprint, result) in the same atomic batch as the command's events; a retry with the same
// id and fingerprint gets that stored result (deduplicated) and writes nothing, and the same
// id with another fingerprint is INVALID_ARGUMENT on options.command_id. The check runs twice:
// before deciding (FindEarlier, so a retry costs no decision) and in the store's writer (for
// two copies racing each other).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fidelis/v1/accounts.pb.h"
#include "google/protobuf/message.h"
#include "storage/event_store.h"

namespace fidelis::server {

// What every command carries besides its payload.
struct CommandContext {
  std::optional<int64_t> expected_version;
  std::string command_id;
  std::string correlation_id;
  std::string causation_id;
  // Identifies the request's payload for idempotency; empty without a command_id.
  std::string fingerprint;
  // The command is not written once this passes (DEADLINE_EXCEEDED).
  absl::Time deadline = absl::InfiniteFuture();
};

// The fingerprint of `request_without_options` sent as `method`.
std::string Fingerprint(std::string_view method,
                        const google::protobuf::Message& request_without_options);

// Validates a context's metadata (lengths, UTF-8, a non-negative expected version).
// INVALID_ARGUMENT naming "options.<field>".
absl::Status ValidateContext(const CommandContext& context);

// The context of `request` (a command request with an `options` field) sent as `method`,
// validated. INVALID_ARGUMENT naming the option at fault.
template <typename Request>
absl::StatusOr<CommandContext> ContextOf(std::string_view method, const Request& request,
                                         absl::Time deadline) {
  CommandContext context;
  const v1::CommandOptions& options = request.options();
  if (options.has_expected_version()) context.expected_version = options.expected_version();
  context.command_id = options.command_id();
  context.correlation_id = options.correlation_id();
  context.causation_id = options.causation_id();
  context.deadline = deadline;
  if (absl::Status valid = ValidateContext(context); !valid.ok()) return valid;
  if (!context.command_id.empty()) {
    Request copy = request;
    copy.clear_options();
    context.fingerprint = Fingerprint(method, copy);
  }
  return context;
}

// Marks `request` with the context's command_id and fingerprint, so the store records them.
void StampAppend(const CommandContext& context, storage::AppendRequest& request);

// The stored result of an earlier command with the context's command_id, or nullopt (no id,
// or none applied yet). INVALID_ARGUMENT when that id was used for a different request.
absl::StatusOr<std::optional<storage::AppendResult>> FindEarlier(const storage::EventStore& store,
                                                                 const CommandContext& context);

// The caller's status for an append error: the store's ALREADY_EXISTS (the command_id was
// used for a different request) becomes INVALID_ARGUMENT on options.command_id; any other
// status is returned as it is.
absl::Status MapAppendError(const absl::Status& status);

}  // namespace fidelis::server
