// AccountCommandsService: fidelis.v1.AccountCommands, served from the table of commands
// (server/write/command_table.h). Each command method authenticates the call, parses the
// request bytes (request_parsing.h), runs the command's row, and answers from the event log's
// writer thread once the command is durable; ExecuteCommands runs a batch
// (server/write/command_batch.h) through the same rows; Ping is the benchmarks' no-op.
//
// Every method is a raw callback method answering through the call's default reactor, so no
// thread sleeps per command while the WAL syncs.
//
// Thread-safety: immutable after construction; the handler, authenticator and clock are not
// owned and must outlive the service.
#pragma once

#include "absl/status/status.h"
#include "domain/clock.h"
#include "fidelis/v1/accounts.grpc.pb.h"
#include "server/api/auth.h"
#include "server/write/command_handler.h"
#include "server/write/command_table.h"

namespace fidelis::server {

class AccountCommandsService final : public v1::AccountCommands::Service {
 public:
  AccountCommandsService(CommandHandler* handler, const Authenticator* auth, const Clock* clock);

  // OK when every method of fidelis.v1.AccountCommands has a row in the command table (or is
  // ExecuteCommands or Ping), with the method's request and response types; otherwise
  // INTERNAL naming the first method that does not. The server refuses to start without it.
  static absl::Status CheckTable();

 private:
  grpc::ServerUnaryReactor* ServeCommand(const CommandRow& row,
                                         grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response);
  grpc::ServerUnaryReactor* ServeBatch(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request, grpc::ByteBuffer* response);
  grpc::ServerUnaryReactor* ServePing(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request, grpc::ByteBuffer* response);

  CommandHandler* const handler_;
  const Authenticator* const auth_;
  const Clock* const clock_;
};

}  // namespace fidelis::server
