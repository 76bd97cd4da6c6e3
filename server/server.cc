#include "server/server.h"

#include "domain/account_projectors.h"
#include "domain/money.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "domain/version.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/api/auth.h"
#include "server/api/version_metadata.h"
#include "server/system_clock.h"
#include "spdlog/spdlog.h"

namespace fidelis::server {

namespace {

bool IsLoopback(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  return host.rfind("127.", 0) == 0 || host == "localhost" || host == "[::1]" ||
         host == "ipv4:127.0.0.1";
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls_cert_file and --tls_key_file");
  }
  if (options.tls_cert_file.empty()) {
    if (!options.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca_file needs --tls_cert_file");
    }
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.private_key, ReadFileNamed(options.tls_key_file, "TLS key"));
  ASSIGN_OR_RETURN(pair.cert_chain, ReadFileNamed(options.tls_cert_file, "TLS certificate"));
  ssl.pem_key_cert_pairs.push_back(pair);
  if (!options.tls_client_ca_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFileNamed(options.tls_client_ca_file, "client CA"));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

FidelisServer::FidelisServer(const ServerOptions& options)
    : options_(options), registry_(MakeAccountEventRegistry(options.default_currency)) {}

absl::StatusOr<std::unique_ptr<FidelisServer>> FidelisServer::Start(const ServerOptions& options) {
  if (!IsKnownCurrency(options.default_currency)) {
    return absl::InvalidArgumentError(
        StrCat("default currency '", options.default_currency, "' is not an ISO 4217 code"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, Credentials(options));
  const bool tls = !options.tls_cert_file.empty();
  if (!IsLoopback(options.listen_address) && !options.insecure &&
      (!tls || options.admin_token.empty())) {
    return absl::FailedPreconditionError(
        StrCat("refusing to listen on non-loopback address ", options.listen_address,
               " without TLS (--tls_cert_file, --tls_key_file) and an admin token "
               "(--admin_token_file); pass --insecure to do it anyway (in the container image, "
               "these flags go in FIDELIS_ARGS)"));
  }
  if (!options.http_listen.empty() && !IsLoopback(options.http_listen) && !options.insecure &&
      options.admin_token.empty()) {
    return absl::FailedPreconditionError(
        StrCat("refusing to serve HTTP on non-loopback address ", options.http_listen,
               " without an admin token (--admin_token_file): the console's actions would be "
               "open to anyone who can reach it; pass --insecure to do it anyway"));
  }
  std::unique_ptr<FidelisServer> server(new FidelisServer(options));
  server->metrics_ = std::make_unique<ServerMetrics>();
  server->auth_ = std::make_unique<Authenticator>(options.admin_token, options.client_token);
  if (options.clock == nullptr) {
    server->owned_clock_ = std::make_unique<SystemClock>();
    server->clock_ = server->owned_clock_.get();
  } else {
    server->clock_ = options.clock;
  }
  // The log and the projections live in two RocksDB instances (storage/database.h) that share
  // one block cache. Each has its own memtable budget: with a shared one, projection writes
  // made the log switch and flush memtables inside its write path (a 29 ms group commit).
  storage::DatabaseOptions db_options;
  db_options.sync_writes = options.sync_writes;
  db_options.env = options.env;
  db_options.block_cache = rocksdb::NewLRUCache(db_options.block_cache_bytes);
  ASSIGN_OR_RETURN(server->database_, storage::Database::Open(options.data_dir, db_options));
  ASSIGN_OR_RETURN(server->views_,
                   storage::Database::Open(
                       StrCat(options.data_dir, "/", storage::kProjectionsDirectory), db_options));
  if (options.event_store == "nats") {
    storage::nats::NatsEventStoreOptions nats = options.nats;
    nats.max_pending_appends = options.max_pending_appends;
    nats.observer = server->metrics_.get();
    ASSIGN_OR_RETURN(server->store_,
                     storage::nats::NatsEventStore::Open(server->database_.get(), nats));
  } else if (options.event_store == "rocksdb") {
    storage::EventStoreOptions store_options;
    store_options.max_pending_appends = options.max_pending_appends;
    store_options.min_sync_interval = options.min_sync_interval;
    store_options.observer = server->metrics_.get();
    ASSIGN_OR_RETURN(server->store_,
                     storage::RocksDbEventStore::Open(server->database_.get(), store_options));
  } else {
    return absl::InvalidArgumentError(
        StrCat("event store '", options.event_store, "' is neither rocksdb nor nats"));
  }
  server->snapshots_ = std::make_unique<storage::SnapshotStore>(server->database_.get());
  RETURN_IF_ERROR(AccountCommandsService::CheckTable());
  server->handler_ = std::make_unique<CommandHandler>(
      server->store_.get(), server->snapshots_.get(), &server->registry_, server->clock_);

  server->projectors_ = MakeAccountProjectors();
  std::vector<const Projector*> live;
  for (const auto& projector : server->projectors_) live.push_back(projector.get());
  ProjectionEngineOptions engine_options;
  engine_options.batch_size = options.projection_batch_size;
  engine_options.tail_interval = options.projection_tail_interval;
  engine_options.rollback_window = options.rollback_window;
  engine_options.initial_versions = options.initial_projection_versions;
  server->engine_ =
      std::make_unique<ProjectionEngine>(server->views_.get(), server->store_.get(),
                                         &server->registry_, server->clock_, engine_options);
  RETURN_IF_ERROR(server->engine_->Start(live));

  const Authenticator* auth = server->auth_.get();
  const Clock* clock = server->clock_;
  server->commands_service_ =
      std::make_unique<AccountCommandsService>(server->handler_.get(), auth, clock);
  server->queries_service_ = std::make_unique<AccountQueriesService>(
      server->engine_.get(), server->store_.get(), &server->serving_, auth, clock);
  server->event_log_service_ = std::make_unique<EventLogService>(
      server->store_.get(), &server->registry_, &server->serving_, auth, clock);
  server->rebuilds_ = std::make_unique<RebuildManager>(
      server->engine_.get(), server->store_.get(), &server->registry_, clock,
      options.rebuild_tuning, options.rebuild_observer);
  server->rebuilds_->ResumeInterrupted();
  server->admin_service_ = std::make_unique<ProjectionAdminService>(
      server->engine_.get(), server->store_.get(), server->rebuilds_.get(), &server->serving_, auth,
      clock);

  grpc::EnableDefaultHealthCheckService(true);
  // gRPC answers the health service itself, but reflection can describe it to clients such as
  // grpcurl only from descriptors in the generated pool: make sure ours are linked in.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, credentials, &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  // Handlers of the synchronous services (queries, the log, admin) may block, for example on a
  // projection catching up. Keep their threads around instead of letting gRPC create and
  // destroy one per call.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 4);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 512);
  builder.RegisterService(server->commands_service_.get());
  builder.RegisterService(server->queries_service_.get());
  builder.RegisterService(server->event_log_service_.get());
  builder.RegisterService(server->admin_service_.get());
  {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(NewVersionMetadataFactory());
    creators.push_back(server->metrics_->calls()->NewFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(StrCat("cannot listen on ", options.listen_address));
  }
  server->metrics_->Attach(server->store_.get(), server->engine_.get(), server->rebuilds_.get(),
                           server->database_.get(), server->views_.get(), server->clock_);
  if (!options.http_listen.empty()) {
    HttpServerOptions http;
    http.listen_address = options.http_listen;
    if (IsLoopback(options.http_listen)) http.read_token = options.client_token;
    http.version = VersionLine("fidelisd");
    ServerMetrics* metrics = server->metrics_.get();
    ASSIGN_OR_RETURN(server->http_,
                     HttpServer::Start(
                         http, [metrics] { return metrics->Scrape(); },
                         server->grpc_server_->InProcessChannel(grpc::ChannelArguments()),
                         metrics->calls()->all_commands()));
  }
  // A cluster node is NOT_SERVING until its replica has caught up with the log of record.
  const bool ready = server->store_->WaitUntilReady(absl::ZeroDuration());
  server->grpc_server_->GetHealthCheckService()->SetServingStatus(ready);
  if (!ready) {
    FidelisServer* raw = server.get();
    server->ready_reporter_ = std::thread([raw] {
      while (!raw->serving_.stopping()) {
        if (raw->store_->WaitUntilReady(absl::Milliseconds(200))) {
          if (!raw->serving_.stopping()) {
            raw->grpc_server_->GetHealthCheckService()->SetServingStatus(true);
            spdlog::info("the replica has caught up with the log of record: serving");
          }
          return;
        }
      }
    });
  }
  const std::string log_of_record =
      options.event_store == "nats"
          ? StrCat("NATS JetStream stream ", options.nats.jetstream.stream, " (",
                   options.nats.jetstream.servers.size(), " servers), replica")
          : std::string("embedded");
  spdlog::info(
      "{} serving on {}{} with data in {} ({} log, head position {}, WAL sync {}, TLS {}, "
      "admin token {}, client token {})",
      VersionLine("fidelisd"), server->address(),
      server->http_ ? StrCat(" (HTTP on ", server->http_address(), ")") : std::string(),
      options.data_dir, log_of_record, server->store_->HeadPosition(),
      options.sync_writes ? "on" : "off",
      !tls ? "off" : (options.tls_client_ca_file.empty() ? "on" : "on with client certificates"),
      auth->admin_protected() ? "required" : "off", auth->client_protected() ? "required" : "off");
  return server;
}

int FidelisServer::http_port() const { return http_ ? http_->port() : 0; }

std::string FidelisServer::http_address() const {
  if (!http_) return "";
  return StrCat(options_.http_listen.substr(0, options_.http_listen.rfind(':')), ":",
                http_->port());
}

std::string FidelisServer::address() const {
  std::string host = options_.listen_address.substr(0, options_.listen_address.rfind(':'));
  return StrCat(host, ":", port_);
}

void FidelisServer::Shutdown() {
  if (shut_down_.exchange(true)) return;
  // A server that failed to start says so itself (the caller logs its status), not that it
  // shut down.
  const bool started = grpc_server_ != nullptr;
  if (started) spdlog::info("fidelisd shutting down");
  // Streams end now with UNAVAILABLE rather than at the end of the grace period.
  serving_.Stop();
  // The HTTP listener calls into the gRPC server: it goes first.
  if (http_) http_->Stop();
  if (ready_reporter_.joinable()) ready_reporter_.join();
  if (grpc_server_) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           absl::ToChronoNanoseconds(options_.shutdown_grace));
    grpc_server_->Wait();
  }
  const bool store_healthy = store_ == nullptr || store_->healthy();
  if (rebuilds_) rebuilds_->Shutdown();
  if (engine_) engine_->Stop();
  rebuilds_.reset();
  engine_.reset();
  // Projection writes are never synced: what a crash loses, they re-apply from the log.
  views_.reset();
  // Answers what is still queued for the log (nothing, once gRPC has shut down) before the
  // handler and snapshot store its callbacks use go away.
  store_.reset();
  handler_.reset();
  snapshots_.reset();
  if (database_) {
    // With sync_writes every acknowledged append is already synced. Without it, sync the WAL
    // once now, unless a write failed: RocksDB refuses (and asserts on) I/O to a broken WAL.
    if (!options_.sync_writes && store_healthy) {
      database_->db()->FlushWAL(true).PermitUncheckedError();
    }
    database_.reset();
  }
  if (started) spdlog::info("fidelisd stopped");
}

void FidelisServer::Wait() {
  if (grpc_server_) grpc_server_->Wait();
}

FidelisServer::~FidelisServer() { Shutdown(); }

}  // namespace fidelis::server
