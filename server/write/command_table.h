// The table of commands: every command the service accepts, once.
//
// A row names the command's RPC method of fidelis.v1.AccountCommands, which is also the
// prefix of its idempotency fingerprint; its request and response messages; the accounts it
// names (which order it within an ExecuteCommands batch); and how its request becomes a call
// of the command handler. Both the unary methods and ExecuteCommands are served from this
// table (server/api/account_commands_service.h, command_batch.h), so adding a command is:
//
//   1. its request message and its rpc in proto/fidelis/v1/accounts.proto, and a field of
//      that request type in BatchCommand;
//   2. its domain command, validation and decision in domain/account.h;
//   3. one row in CommandTable() (command_table.cc).
//
// docs/architecture.md walks through an example. Thread-safety: the table is built once and
// is immutable; rows may be used from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "server/write/command_handler.h"

namespace fidelis::server {

// Receives a command's response message, or its error, exactly once, on the threads
// CommandDone runs on (command_handler.h).
using ResponseDone =
    absl::AnyInvocable<void(absl::StatusOr<std::unique_ptr<google::protobuf::Message>>) &&>;

class CommandRow {
 public:
  virtual ~CommandRow() = default;

  // The RPC method, such as "MakeDeposit".
  virtual std::string_view method() const = 0;
  virtual const google::protobuf::Descriptor* request_type() const = 0;
  virtual const google::protobuf::Descriptor* response_type() const = 0;
  // An empty request to parse into.
  virtual std::unique_ptr<google::protobuf::Message> NewRequest() const = 0;
  // The accounts `request` names (views into it): a command in a batch waits for the earlier
  // commands on them. None for a command that creates its account.
  using AccountIds = absl::InlinedVector<std::string_view, 2>;
  virtual AccountIds Accounts(const google::protobuf::Message& request) const = 0;
  // Reads the request's options (INVALID_ARGUMENT naming one at fault), then runs the command
  // on `handler`; `done` gets the response. `request` must be of request_type() and is not
  // needed after Run returns.
  virtual void Run(CommandHandler& handler, const google::protobuf::Message& request,
                   absl::Time deadline, ResponseDone done) const = 0;
};

// Every command, in the order of the service's methods.
const std::vector<std::unique_ptr<const CommandRow>>& CommandTable();

// The row whose request type is `request_type`, or null.
const CommandRow* FindCommandRow(const google::protobuf::Descriptor* request_type);

}  // namespace fidelis::server
