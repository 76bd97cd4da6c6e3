#include "server/daemon.h"

#include <csignal>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/strings.h"
#include "domain/version.h"
#include "server/api/auth.h"
#include "server/log_format.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to listen on (host:port; port 0 picks a free one).");
ABSL_FLAG(std::string, data_dir, "./data",
          "RocksDB data directory (created if missing); with --event_store=nats, the node's "
          "replica of the log and its projections.");
ABSL_FLAG(std::string, event_store, "rocksdb",
          "Where the log of record lives: rocksdb (embedded, in --data_dir) or nats (a NATS "
          "JetStream stream several fidelisd nodes share).");
ABSL_FLAG(std::string, nats_url, "nats://127.0.0.1:4222",
          "With --event_store=nats: comma-separated NATS server URLs.");
ABSL_FLAG(std::string, nats_stream, "FIDELIS",
          "With --event_store=nats: the JetStream stream that holds the log (created if missing).");
ABSL_FLAG(int, nats_replicas, 1,
          "With --event_store=nats: copies JetStream keeps of the stream when it creates it "
          "(1 to 5; 3 survives the loss of any one NATS server).");
ABSL_FLAG(absl::Duration, nats_publish_timeout, absl::Seconds(10),
          "With --event_store=nats: how long a command waits for JetStream to take it (a new "
          "stream leader being elected after a server failed) before it gets UNAVAILABLE; with "
          "no NATS server reachable at all it gets UNAVAILABLE after 2s (0.1s to 1m).");
ABSL_FLAG(int, nats_publishes_in_flight, 4,
          "With --event_store=nats: batches a node publishes before the first is acknowledged "
          "(1 to 64; 1 waits for each acknowledgement before the next publish).");
ABSL_FLAG(bool, nats_sync_replica, false,
          "With --event_store=nats: sync the node's replica of the log before answering a "
          "command. Off, the replica is not synced: the stream is the record (and JetStream "
          "acknowledges before it syncs), so after a machine crash the node re-reads what its "
          "replica lost from the stream.");
ABSL_FLAG(bool, sync_writes, true,
          "With the embedded log: sync the WAL before acknowledging a command. false survives a "
          "process crash but may lose the last acknowledged commands on power loss or a kernel "
          "crash. A cluster node's replica: see --nats_sync_replica.");
ABSL_FLAG(std::string, default_currency, "EUR",
          "ISO 4217 currency assigned to retired schema-1 events, which carried none.");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off.");
ABSL_FLAG(std::string, log_format, "text",
          "text, or json: one JSON object per line (time, level, thread, message, and fields "
          "such as projection, rebuild_id and global_position).");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "host:port of the HTTP listener: /metrics, /healthz, /readyz and the admin console "
          "at /. Empty: none. Beyond loopback it needs --admin_token_file.");
ABSL_FLAG(int, projection_batch_size, 1000, "Events per write batch of the live projections.");
ABSL_FLAG(absl::Duration, projection_tail_interval, absl::Milliseconds(2),
          "How long a live projection that has caught up with the log waits before its next "
          "batch, so the events of that interval are written together; queries with "
          "min_global_position end the wait at once. 0: no wait.");
ABSL_FLAG(int, max_message_bytes, 1 << 20, "Largest request accepted, in bytes.");
ABSL_FLAG(int, max_concurrent_streams, 256,
          "Concurrent calls one client connection may have open.");
ABSL_FLAG(int, max_pending_appends, 4096,
          "Commands waiting for the log writer beyond which new ones get RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, min_sync_interval, absl::Microseconds(700),
          "While commands arrive faster than one per WAL sync, the least time between the "
          "starts of two syncs, so that the commands arriving meanwhile share one (a commit "
          "delay). A command arriving after a quiet spell is never delayed. 0: no delay.");
ABSL_FLAG(std::string, admin_token_file, "",
          "File holding the bearer token that rebuild and cancel RPCs require.");
ABSL_FLAG(std::string, client_token_file, "",
          "File holding the bearer token that command, query and log RPCs require.");
ABSL_FLAG(std::string, tls_cert_file, "", "PEM certificate chain; enables TLS.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of the certificate.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle; clients must present a certificate it signed (mTLS).");
ABSL_FLAG(absl::Duration, rollback_window, absl::Hours(1),
          "How long a blue-green promote keeps the previous build for RollbackProjection.");
ABSL_FLAG(std::vector<std::string>, initial_projection_versions, {},
          "name=version pairs: the version a projection starts with when the database has "
          "none of it yet (default: the newest in the binary), e.g. AccountReport=1.");
ABSL_FLAG(int, rebuild_nice, 10,
          "Niceness (0-19) of rebuild threads, so live traffic goes first; 0 disables.");
ABSL_FLAG(bool, rebuild_idle_priority, true,
          "Rebuild threads run under SCHED_IDLE, only on a core no live thread wants; false "
          "leaves them under the normal policy at --rebuild_nice.");
ABSL_FLAG(uint64_t, rebuild_max_rate, 0,
          "Default cap of a rebuild's replay, in events per second; 0 means none.");
ABSL_FLAG(bool, rebuild_yield, true,
          "Rebuilds pause between batches (up to --rebuild_yield_max) while commands wait for "
          "the log writer.");
ABSL_FLAG(absl::Duration, rebuild_yield_max, absl::Milliseconds(15),
          "With --rebuild_yield, the longest pause after one batch of a rebuild while commands "
          "wait for the log writer (0 to 1s). Under a steady load this sets the rebuild's pace.");
ABSL_FLAG(absl::Duration, rebuild_checkpoint_interval, absl::Seconds(30),
          "How often a blue-green replay makes its shadow durable (0 to 1h); a rebuild "
          "interrupted by a crash resumes from there.");
ABSL_FLAG(bool, insecure, false,
          "Allow a non-loopback --listen address without TLS and an admin token.");

namespace {

// True when `value` of --`flag` lies in [0, max]; otherwise logs why fidelisd cannot start.
bool WithinRange(const char* flag, absl::Duration value, absl::Duration max) {
  if (value >= absl::ZeroDuration() && value <= max) return true;
  spdlog::error("fidelisd failed to start: --{} must be between 0 and {}", flag,
                absl::FormatDuration(max));
  return false;
}

}  // namespace

namespace fidelis::server {

int RunDaemon(int argc, char** argv, const std::function<void(ServerOptions&)>& customize) {
  // Debian builds Abseil without NDEBUG, which leaves Mutex's lock-order (deadlock) tracking on:
  // every lock and unlock of a Mutex, gRPC's included, then consults a process-wide graph
  // under one spin lock. The tests keep it; the service turns it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage("fidelisd: the Fidelis event-sourced account service.");
  absl::FlagsUsageConfig usage;
  usage.version_string = [] { return VersionLine("fidelisd") + "\n"; };
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  spdlog::set_level(spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));
  const std::string log_format = absl::GetFlag(FLAGS_log_format);
  if (log_format == "json") {
    spdlog::set_formatter(std::make_unique<JsonLogFormatter>());
  } else if (log_format != "text") {
    spdlog::error("fidelisd failed to start: --log_format must be text or json, got '{}'",
                  log_format);
    return 1;
  }

  // Handle SIGTERM and SIGINT on this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.http_listen = absl::GetFlag(FLAGS_http_listen);
  options.event_store = absl::GetFlag(FLAGS_event_store);
  if (options.event_store != "rocksdb" && options.event_store != "nats") {
    spdlog::error("fidelisd failed to start: --event_store must be rocksdb or nats, got '{}'",
                  options.event_store);
    return 1;
  }
  if (options.event_store == "nats") {
    auto servers = storage::nats::ParseServers(absl::GetFlag(FLAGS_nats_url));
    if (!servers.ok()) {
      spdlog::error("fidelisd failed to start: --nats_url: {}",
                    std::string(servers.status().message()));
      return 1;
    }
    options.nats.jetstream.servers = *std::move(servers);
    options.nats.jetstream.stream = absl::GetFlag(FLAGS_nats_stream);
    options.nats.jetstream.subject = StrCat("fidelis.log.", options.nats.jetstream.stream);
    options.nats.jetstream.replicas = absl::GetFlag(FLAGS_nats_replicas);
    if (options.nats.jetstream.replicas < 1 || options.nats.jetstream.replicas > 5) {
      spdlog::error("fidelisd failed to start: --nats_replicas must be between 1 and 5");
      return 1;
    }
    options.nats.publish_deadline = absl::GetFlag(FLAGS_nats_publish_timeout);
    if (options.nats.publish_deadline < absl::Milliseconds(100) ||
        options.nats.publish_deadline > absl::Minutes(1)) {
      spdlog::error(
          "fidelisd failed to start: --nats_publish_timeout must be between 100ms and 1m");
      return 1;
    }
    const int in_flight = absl::GetFlag(FLAGS_nats_publishes_in_flight);
    if (in_flight < 1 || in_flight > 64) {
      spdlog::error(
          "fidelisd failed to start: --nats_publishes_in_flight must be between 1 and 64, got {}",
          in_flight);
      return 1;
    }
    options.nats.max_publishes_in_flight = static_cast<size_t>(in_flight);
  }
  options.sync_writes = options.event_store == "nats" ? absl::GetFlag(FLAGS_nats_sync_replica)
                                                      : absl::GetFlag(FLAGS_sync_writes);
  options.default_currency = absl::GetFlag(FLAGS_default_currency);
  options.projection_batch_size = absl::GetFlag(FLAGS_projection_batch_size);
  options.projection_tail_interval = absl::GetFlag(FLAGS_projection_tail_interval);
  if (options.projection_tail_interval < absl::ZeroDuration()) {
    spdlog::error("fidelisd failed to start: --projection_tail_interval must not be negative");
    return 1;
  }
  options.max_receive_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_pending_appends = absl::GetFlag(FLAGS_max_pending_appends);
  options.min_sync_interval = absl::GetFlag(FLAGS_min_sync_interval);
  if (!WithinRange("min_sync_interval", options.min_sync_interval, absl::Milliseconds(100))) {
    return 1;
  }
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  for (auto [flag, token] :
       {std::pair{absl::GetFlag(FLAGS_admin_token_file), &options.admin_token},
        std::pair{absl::GetFlag(FLAGS_client_token_file), &options.client_token}}) {
    if (flag.empty()) continue;
    auto read = ReadTokenFile(flag);
    if (!read.ok()) {
      spdlog::error("fidelisd failed to start: {}", read.status().ToString());
      return 1;
    }
    *token = *read;
  }
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.rollback_window = absl::GetFlag(FLAGS_rollback_window);
  for (const std::string& pair : absl::GetFlag(FLAGS_initial_projection_versions)) {
    const size_t eq = pair.find('=');
    uint32_t version = 0;
    if (eq == std::string::npos || !absl::SimpleAtoi(pair.substr(eq + 1), &version) ||
        version == 0) {
      spdlog::error(
          "fidelisd failed to start: --initial_projection_versions wants name=version, "
          "got '{}'",
          pair);
      return 1;
    }
    options.initial_projection_versions[pair.substr(0, eq)] = version;
  }
  const int nice = absl::GetFlag(FLAGS_rebuild_nice);
  if (nice < 0 || nice > 19) {
    spdlog::error("fidelisd failed to start: --rebuild_nice must be between 0 and 19");
    return 1;
  }
  options.rebuild_tuning.nice = nice;
  options.rebuild_tuning.idle_priority = absl::GetFlag(FLAGS_rebuild_idle_priority);
  options.rebuild_tuning.max_events_per_second = absl::GetFlag(FLAGS_rebuild_max_rate);
  options.rebuild_tuning.yield = absl::GetFlag(FLAGS_rebuild_yield);
  options.rebuild_tuning.yield_max = absl::GetFlag(FLAGS_rebuild_yield_max);
  if (!WithinRange("rebuild_yield_max", options.rebuild_tuning.yield_max, absl::Seconds(1))) {
    return 1;
  }
  options.rebuild_tuning.durable_interval = absl::GetFlag(FLAGS_rebuild_checkpoint_interval);
  if (!WithinRange("rebuild_checkpoint_interval", options.rebuild_tuning.durable_interval,
                   absl::Hours(1))) {
    return 1;
  }
  if (customize) customize(options);
  auto server = FidelisServer::Start(options);
  if (!server.ok()) {
    spdlog::error("fidelisd failed to start: {}", server.status().ToString());
    return 1;
  }
  // Scripts wait for this line to learn the bound port.
  std::printf("listening on %s\n", (*server)->address().c_str());
  if ((*server)->http_port() != 0) {
    std::printf("http on http://%s\n", (*server)->http_address().c_str());
  }
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("received signal {}", received);
  (*server)->Shutdown();
  return 0;
}

}  // namespace fidelis::server
