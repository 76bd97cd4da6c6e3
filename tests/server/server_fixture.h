// A fixture that runs a real FidelisServer in-process on 127.0.0.1:0 with RocksDB in a fresh
// temporary directory, and talks to it through the generated stubs over real gRPC.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "fidelis/v1/accounts.grpc.pb.h"
#include "fidelis/v1/admin.grpc.pb.h"
#include "fidelis/v1/event_log.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/test_util.h"

namespace fidelis::testing {

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }
  void TearDown() override { StopServer(); }

  virtual void Configure(server::ServerOptions& /*options*/) {}

  void StartServer() {
    server::ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = dir_.Sub("data");
    options.shutdown_grace = absl::Milliseconds(500);
    Configure(options);
    auto started = server::FidelisServer::Start(options);
    ASSERT_OK(started);
    server_ = std::move(*started);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    commands_ = v1::AccountCommands::NewStub(channel_);
    queries_ = v1::AccountQueries::NewStub(channel_);
    log_ = v1::EventLog::NewStub(channel_);
    admin_ = v1::ProjectionAdmin::NewStub(channel_);
  }

  void StopServer() {
    commands_.reset();
    queries_.reset();
    log_.reset();
    admin_.reset();
    channel_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
  }

  void RestartServer() {
    StopServer();
    StartServer();
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout = absl::Seconds(10)) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return context;
  }

  grpc::Status Open(const std::string& number, int64_t deposit, v1::CommandResult* result,
                    const std::string& currency = "EUR") {
    v1::OpenAccountRequest request;
    request.set_account_number(number);
    request.set_holder_name("Holder " + number);
    request.mutable_opening_deposit()->set_minor_units(deposit);
    request.mutable_opening_deposit()->set_currency(currency);
    return commands_->OpenAccount(Ctx().get(), request, result);
  }

  std::string OpenOk(const std::string& number, int64_t deposit) {
    v1::CommandResult result;
    grpc::Status status = Open(number, deposit, &result);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return result.account_id();
  }

  static v1::MakeDepositRequest DepositRequest(const std::string& id, int64_t amount,
                                               const std::string& command_id = "") {
    v1::MakeDepositRequest request;
    request.set_account_id(id);
    request.mutable_amount()->set_minor_units(amount);
    request.mutable_amount()->set_currency("EUR");
    request.mutable_options()->set_command_id(command_id);
    return request;
  }

  static v1::MakeWithdrawalRequest WithdrawalRequest(const std::string& id, int64_t amount) {
    v1::MakeWithdrawalRequest request;
    request.set_account_id(id);
    request.mutable_amount()->set_minor_units(amount);
    request.mutable_amount()->set_currency("EUR");
    return request;
  }

  grpc::Status Deposit(const std::string& id, int64_t amount, v1::CommandResult* result,
                       const std::string& command_id = "") {
    return commands_->MakeDeposit(Ctx().get(), DepositRequest(id, amount, command_id), result);
  }

  grpc::Status Withdraw(const std::string& id, int64_t amount, v1::CommandResult* result) {
    return commands_->MakeWithdrawal(Ctx().get(), WithdrawalRequest(id, amount), result);
  }

  v1::AccountSummary Summary(const std::string& id, uint64_t min_position) {
    v1::GetAccountSummaryRequest request;
    request.set_account_id(id);
    request.set_min_global_position(min_position);
    v1::AccountSummary summary;
    grpc::Status status = queries_->GetAccountSummary(Ctx().get(), request, &summary);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return summary;
  }

  // The field named by a status's google.rpc.BadRequest detail, or "".
  static std::string ViolatedField(const grpc::Status& status) {
    google::rpc::Status details;
    if (!details.ParseFromString(status.error_details())) return "";
    for (const auto& any : details.details()) {
      google::rpc::BadRequest bad_request;
      if (any.UnpackTo(&bad_request) && bad_request.field_violations_size() > 0) {
        return bad_request.field_violations(0).field();
      }
    }
    return "";
  }

  uint64_t Head() { return server_->event_store()->HeadPosition(); }

  // The live build of projection `name`.
  std::shared_ptr<server::ProjectionRunner> Live(std::string_view name) {
    absl::StatusOr<server::ProjectionView> view = server_->engine()->View(name);
    EXPECT_TRUE(view.ok()) << view.status();
    return view.ok() ? view->live : nullptr;
  }

  // Every row of the live build of `projection`, serialized, keyed by row key.
  std::map<std::string, std::string> Rows(std::string_view projection) {
    std::map<std::string, std::string> rows;
    auto runner = Live(projection);
    if (runner == nullptr) return rows;
    EXPECT_OK(runner->store().Scan("", SIZE_MAX, [&](std::string_view k, std::string_view v) {
      rows.emplace(std::string(k), std::string(v));
      return true;
    }));
    return rows;
  }

  // The live build of every projection.
  std::vector<std::shared_ptr<server::ProjectionRunner>> LiveBuilds() {
    std::vector<std::shared_ptr<server::ProjectionRunner>> builds;
    for (const server::ProjectionView& view : server_->engine()->Views()) {
      builds.push_back(view.live);
    }
    return builds;
  }

  TempDir dir_;
  std::unique_ptr<server::FidelisServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AccountCommands::Stub> commands_;
  std::unique_ptr<v1::AccountQueries::Stub> queries_;
  std::unique_ptr<v1::EventLog::Stub> log_;
  std::unique_ptr<v1::ProjectionAdmin::Stub> admin_;
};

}  // namespace fidelis::testing
