#include "clients/cli.h"

#include <cstdio>

#include "google/protobuf/util/json_util.h"

namespace fidelis::clients {

void CommandFlags::AddTo(CLI::App* command) {
  command->add_option("--command-id", command_id, "Idempotency key");
  command->add_option("--expected-version", expected_version, "Optimistic concurrency check");
  command->add_option("--correlation-id", correlation_id, "Correlation id for the events");
}

void CommandFlags::Fill(v1::CommandOptions* options) const {
  if (expected_version >= 0) options->set_expected_version(expected_version);
  options->set_command_id(command_id);
  options->set_correlation_id(correlation_id);
}

void Cli::AddGlobalOptions(CLI::App& app) {
  app.add_option("--server", server, "Server address host:port")->capture_default_str();
  app.add_flag("--json", json, "Print responses as JSON");
  app.add_option("--timeout", timeout_seconds, "Call deadline in seconds (0: none)")
      ->capture_default_str();
  app.add_option("--token", token, "Bearer token (default: --token-file, then $FIDELIS_TOKEN)");
  app.add_option("--token-file", token_file, "File holding the bearer token");
  app.add_option("--tls-ca", tls.tls_ca_file, "CA certificate (PEM) of the server; enables TLS");
  app.add_option("--tls-cert", tls.tls_cert_file, "Client certificate (PEM), for mTLS");
  app.add_option("--tls-key", tls.tls_key_file, "Client key (PEM), for mTLS");
  app.add_option("--tls-server-name", tls.tls_server_name,
                 "Name to check in the server's certificate");
}

void Cli::ConnectOnce() {
  if (channel_) return;
  token = ResolveToken(token, token_file);
  channel_ = Connect(server, tls);
  commands_ = v1::AccountCommands::NewStub(channel_);
  queries_ = v1::AccountQueries::NewStub(channel_);
  log_ = v1::EventLog::NewStub(channel_);
  admin_ = v1::ProjectionAdmin::NewStub(channel_);
}

v1::AccountCommands::Stub& Cli::commands() {
  ConnectOnce();
  return *commands_;
}

v1::AccountQueries::Stub& Cli::queries() {
  ConnectOnce();
  return *queries_;
}

v1::EventLog::Stub& Cli::log() {
  ConnectOnce();
  return *log_;
}

v1::ProjectionAdmin::Stub& Cli::admin() {
  ConnectOnce();
  return *admin_;
}

std::unique_ptr<grpc::ClientContext> Cli::Context(bool stream) {
  ConnectOnce();  // Resolves the token.
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  if (!stream && timeout_seconds > 0) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  }
  return context;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 2;
}

void OnRun(CLI::App* command, Cli& cli, std::function<int()> run) {
  command->callback([&cli, run = std::move(run)] { cli.run = run; });
}

}  // namespace fidelis::clients
