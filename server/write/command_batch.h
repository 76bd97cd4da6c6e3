// CommandBatch: the scheduler behind ExecuteCommands. Runs up to kMaxBatchCommands commands of
// one request, each exactly as its own method would (command_table.h), and reports every
// outcome in request order once the last has ended.
//
// Commands that name the same account (a transfer names two) form a chain in request order:
// each starts when the one before it has ended, so it is decided on the state that one left.
// The chains run concurrently, so their appends share group commits. A command's callback may
// run on the event log's writer thread; starting the next command of a chain from there puts
// its append ahead of the queue (EventStore::AppendAsync), and the account it loads is the one
// just written, which the handler has cached.
//
// A failure stays with its command and names its place: its message is prefixed with
// "commands[i].<field>" and an INVALID_ARGUMENT's field with "commands[i].<field>.".
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fidelis/v1/accounts.pb.h"
#include "google/protobuf/message.h"
#include "server/write/command_handler.h"

namespace fidelis::server {

inline constexpr int kMaxBatchCommands = 1000;

// One command's end: its status, and its response when OK.
struct BatchItem {
  absl::Status status;
  std::unique_ptr<google::protobuf::Message> response;
};

// Receives every command's outcome, in request order, exactly once: on the calling thread or
// on the event log's writer thread (then quickly, without blocking).
using BatchDone = absl::AnyInvocable<void(std::vector<BatchItem>) &&>;

// Validates the batch's size: INVALID_ARGUMENT on "commands" unless it holds 1 to
// kMaxBatchCommands commands.
absl::Status ValidateBatch(const v1::ExecuteCommandsRequest& request);

// Runs every command of `request` (already validated with ValidateBatch) on `handler`; none is
// written after `deadline`. The batch owns itself until `done` has run. `handler` must outlive
// it.
void RunBatch(CommandHandler* handler, std::unique_ptr<v1::ExecuteCommandsRequest> request,
              absl::Time deadline, BatchDone done);

}  // namespace fidelis::server
