#include "server/server.h"

#include "absl/time/clock.h"
#include "domain/account_projectors.h"
#include "domain/money.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/system_clock.h"
#include "spdlog/spdlog.h"

namespace fidelis::server {

FidelisServer::FidelisServer(const ServerOptions& options)
    : options_(options), registry_(MakeAccountEventRegistry(options.default_currency)) {}

absl::StatusOr<std::unique_ptr<FidelisServer>> FidelisServer::Start(const ServerOptions& options) {
  if (!IsKnownCurrency(options.default_currency)) {
    return absl::InvalidArgumentError(
        StrCat("default currency '", options.default_currency, "' is not an ISO 4217 code"));
  }
  std::unique_ptr<FidelisServer> server(new FidelisServer(options));
  if (options.clock == nullptr) {
    server->owned_clock_ = std::make_unique<SystemClock>();
    server->clock_ = server->owned_clock_.get();
  } else {
    server->clock_ = options.clock;
  }
  storage::DatabaseOptions db_options;
  db_options.sync_writes = options.sync_writes;
  db_options.env = options.env;
  ASSIGN_OR_RETURN(server->database_, storage::Database::Open(options.data_dir, db_options));
  ASSIGN_OR_RETURN(server->store_, storage::RocksDbEventStore::Open(server->database_.get()));
  server->snapshots_ = std::make_unique<storage::SnapshotStore>(server->database_.get());
  server->handler_ = std::make_unique<CommandHandler>(
      server->store_.get(), server->snapshots_.get(), &server->registry_, server->clock_);

  server->projectors_ = MakeAccountProjectors();
  std::vector<const Projector*> live;
  for (const auto& projector : server->projectors_) live.push_back(projector.get());
  ProjectionEngineOptions engine_options;
  engine_options.batch_size = options.projection_batch_size;
  server->engine_ = std::make_unique<ProjectionEngine>(
      server->database_.get(), server->store_.get(), &server->registry_, engine_options);
  RETURN_IF_ERROR(server->engine_->Start(live));

  server->commands_service_ = std::make_unique<AccountCommandsService>(server->handler_.get());
  server->queries_service_ = std::make_unique<AccountQueriesService>(server->engine_.get());
  server->event_log_service_ = std::make_unique<EventLogService>(
      server->store_.get(), &server->registry_, &server->stopping_);
  server->rebuilds_ = std::make_unique<RebuildManager>(server->engine_.get(), server->store_.get(),
                                                       &server->registry_);
  server->admin_service_ = std::make_unique<ProjectionAdminService>(
      server->engine_.get(), server->store_.get(), server->rebuilds_.get(), &server->stopping_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // Handlers block on the group commit, so many calls are in flight at once. Keep their
  // threads around instead of letting gRPC create and destroy one per call.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 4);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 512);
  builder.RegisterService(server->commands_service_.get());
  builder.RegisterService(server->queries_service_.get());
  builder.RegisterService(server->event_log_service_.get());
  builder.RegisterService(server->admin_service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(StrCat("cannot listen on ", options.listen_address));
  }
  server->grpc_server_->GetHealthCheckService()->SetServingStatus(true);
  spdlog::info("fidelisd serving on {} with data in {} (head position {}, WAL sync {})",
               server->address(), options.data_dir, server->store_->HeadPosition(),
               options.sync_writes ? "on" : "off");
  return server;
}

std::string FidelisServer::address() const {
  std::string host = options_.listen_address.substr(0, options_.listen_address.rfind(':'));
  return StrCat(host, ":", port_);
}

void FidelisServer::Shutdown() {
  if (shut_down_.exchange(true)) return;
  spdlog::info("fidelisd shutting down");
  stopping_.store(true);
  if (grpc_server_) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
    grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
    grpc_server_->Wait();
  }
  if (rebuilds_) rebuilds_->Shutdown();
  if (engine_) engine_->Stop();
  rebuilds_.reset();
  engine_.reset();
  handler_.reset();
  store_.reset();
  snapshots_.reset();
  if (database_) {
    database_->db()->FlushWAL(true).PermitUncheckedError();
    database_.reset();
  }
  spdlog::info("fidelisd stopped");
}

void FidelisServer::Wait() {
  if (grpc_server_) grpc_server_->Wait();
}

FidelisServer::~FidelisServer() { Shutdown(); }

}  // namespace fidelis::server
