// The command-line client's shared parts: the global options, the connection, and helpers every
// subcommand uses. Each group of subcommands lives in a file of its own (cli_account.cc,
// cli_events.cc, cli_projection.cc) and registers itself with an Add*Commands function; a
// subcommand's CLI11 callback sets Cli::run, which main() calls after parsing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "clients/client_util.h"
#include "fidelis/v1/accounts.grpc.pb.h"
#include "fidelis/v1/admin.grpc.pb.h"
#include "fidelis/v1/event_log.grpc.pb.h"
#include "google/protobuf/message.h"
#include "grpcpp/client_context.h"

namespace fidelis::clients {

// What every command may carry (CommandOptions), from --command-id and friends.
struct CommandFlags {
  std::string command_id;
  int64_t expected_version = -1;
  std::string correlation_id;

  // Adds the flags to `command`.
  void AddTo(CLI::App* command);
  void Fill(v1::CommandOptions* options) const;
};

class Cli {
 public:
  // The global options.
  std::string server = "127.0.0.1:50051";
  std::string token;
  std::string token_file;
  ConnectOptions tls;
  bool json = false;
  double timeout_seconds = 30;

  // The subcommand chosen, set by its callback during parsing; returns the exit status.
  std::function<int()> run;

  // Adds the global options to `app`.
  void AddGlobalOptions(CLI::App& app);

  // The stubs, over one channel opened on first use.
  v1::AccountCommands::Stub& commands();
  v1::AccountQueries::Stub& queries();
  v1::EventLog::Stub& log();
  v1::ProjectionAdmin::Stub& admin();

  // A context with the token and, unless `stream`, the call deadline (--timeout).
  std::unique_ptr<grpc::ClientContext> Context(bool stream = false);

 private:
  void ConnectOnce();

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AccountCommands::Stub> commands_;
  std::unique_ptr<v1::AccountQueries::Stub> queries_;
  std::unique_ptr<v1::EventLog::Stub> log_;
  std::unique_ptr<v1::ProjectionAdmin::Stub> admin_;
};

void AddAccountCommands(CLI::App& app, Cli& cli);
void AddEventCommands(CLI::App& app, Cli& cli);
void AddProjectionCommands(CLI::App& app, Cli& cli);

// `message` as one line of JSON, with proto field names and default values.
std::string ToJson(const google::protobuf::Message& message);

// Prints "error: <message>" and returns the usage exit status, 2.
int Usage(const std::string& message);

// Sets `run` when `command` is chosen. `run` may capture what the command's options write to.
void OnRun(CLI::App* command, Cli& cli, std::function<int()> run);

}  // namespace fidelis::clients
