// FidelisServer: the composition root. Owns and wires every part of a running service: the
// databases, the event log, the write side (server/write/), the read side (server/read/) and
// the gRPC server with its services (server/api/), health checking and reflection.
//
// Lifetime: Start() builds everything and begins serving; Shutdown() stops accepting calls,
// lets in-flight ones finish (up to a grace period), stops the projections and closes RocksDB.
// The destructor shuts down if needed. Tests start one in-process on 127.0.0.1:0.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "domain/event_registry.h"
#include "domain/projector.h"
#include "grpcpp/server.h"
#include "server/api/services.h"
#include "server/http/http_server.h"
#include "server/read/projection_engine.h"
#include "server/read/rebuild_manager.h"
#include "server/server_metrics.h"
#include "server/write/command_handler.h"
#include "storage/database.h"
#include "storage/nats/nats_event_store.h"
#include "storage/rocksdb_event_store.h"
#include "storage/snapshot_store.h"

namespace fidelis::server {

struct ServerOptions {
  std::string listen_address = "127.0.0.1:50051";
  // The HTTP listener of /metrics, /healthz, /readyz and the console (server/http/); empty:
  // none. Beyond loopback it needs an admin token (or `insecure`).
  std::string http_listen;
  std::string data_dir = "./data";
  // Where the log of record lives: "rocksdb", in --data_dir (the default), or "nats", a NATS
  // JetStream stream that several servers share, each keeping a replica in --data_dir.
  std::string event_store = "rocksdb";
  // With event_store "nats": the servers, stream, replicas and publish deadline
  // (storage/nats/nats_event_store.h). max_pending_appends applies too.
  storage::nats::NatsEventStoreOptions nats;
  // Whether each write of the log (with event_store "nats": of the node's replica) is synced
  // before the command is answered.
  bool sync_writes = true;
  std::string default_currency = "EUR";
  size_t projection_batch_size = 1000;
  // How long a live projection that has caught up waits before its next batch (see
  // ProjectionEngineOptions::tail_interval).
  absl::Duration projection_tail_interval = absl::Milliseconds(2);
  // Blue-green: how long a promote keeps the previous build for a rollback.
  absl::Duration rollback_window = absl::Hours(1);
  // The version each projection starts with when the database has none of it yet (by
  // default the newest in the binary).
  std::map<std::string, uint32_t, std::less<>> initial_projection_versions;
  // Rebuild priority, rate and yielding defaults (server/read/rebuild_job.h).
  RebuildTuning rebuild_tuning;
  // Told of each phase a rebuild enters (tests hold jobs at a phase with one). Not owned; null
  // means none.
  RebuildObserver* rebuild_observer = nullptr;
  // Appends waiting for the event log's writer beyond which commands are refused at once
  // with RESOURCE_EXHAUSTED instead of piling up.
  size_t max_pending_appends = 4096;
  // While commands arrive faster than one per WAL sync, the least time between the starts of
  // two syncs of the log (storage::EventStoreOptions::min_sync_interval); zero disables it.
  absl::Duration min_sync_interval = absl::Microseconds(700);
  // Concurrent calls (HTTP/2 streams) one client connection may have open.
  int max_concurrent_streams = 256;
  // Largest request the server accepts, in bytes.
  int max_receive_message_bytes = 1 << 20;
  // How long Shutdown() lets in-flight calls run before cancelling them.
  absl::Duration shutdown_grace = absl::Seconds(5);
  // Bearer tokens (server/auth.h); empty disables the check.
  std::string admin_token;
  std::string client_token;
  // TLS: PEM files of the server's certificate chain and key. With a client CA too, clients
  // must present a certificate signed by it (mTLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // Allow a non-loopback listen address without TLS and an admin token.
  bool insecure = false;
  // Not owned; null means the system clock.
  const Clock* clock = nullptr;
  // Not owned; null means RocksDB's default environment.
  rocksdb::Env* env = nullptr;
};

class FidelisServer {
 public:
  static absl::StatusOr<std::unique_ptr<FidelisServer>> Start(const ServerOptions& options);
  ~FidelisServer();

  // The port actually bound (useful with port 0).
  int port() const { return port_; }
  // The HTTP listener's port; 0 without one.
  int http_port() const;
  // host:port of the HTTP listener; empty without one.
  std::string http_address() const;
  std::string address() const;

  // Graceful stop. Idempotent; thread-safe.
  void Shutdown();
  // Blocks until the gRPC server has shut down.
  void Wait();

  storage::EventStore* event_store() { return store_.get(); }
  ProjectionEngine* engine() { return engine_.get(); }
  RebuildManager* rebuilds() { return rebuilds_.get(); }
  const EventRegistry& registry() const { return registry_; }

 private:
  explicit FidelisServer(const ServerOptions& options);

  const ServerOptions options_;
  // First: the event store reports to it, and it reads everything below.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<Clock> owned_clock_;
  std::unique_ptr<Authenticator> auth_;
  const Clock* clock_ = nullptr;
  EventRegistry registry_;
  std::vector<std::unique_ptr<Projector>> projectors_;
  std::unique_ptr<storage::Database> database_;  // The log and snapshots.
  std::unique_ptr<storage::Database> views_;     // Projections and their catalog.
  std::unique_ptr<storage::EventStore> store_;
  std::unique_ptr<storage::SnapshotStore> snapshots_;
  std::unique_ptr<CommandHandler> handler_;
  std::unique_ptr<ProjectionEngine> engine_;
  std::unique_ptr<RebuildManager> rebuilds_;
  std::unique_ptr<AccountCommandsService> commands_service_;
  std::unique_ptr<AccountQueriesService> queries_service_;
  std::unique_ptr<EventLogService> event_log_service_;
  std::unique_ptr<ProjectionAdminService> admin_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<HttpServer> http_;
  ServingState serving_;
  // Reports SERVING once the log can serve (a cluster node's replica has caught up).
  std::thread ready_reporter_;
  std::atomic<bool> shut_down_{false};
  int port_ = 0;
};

}  // namespace fidelis::server
