// ServerMetrics: every metric of a running server, in one Registry (server/metrics/metrics.h).
//
// Live metrics: the gRPC calls (server/api/call_metrics.h) and the event log's writer (this
// class is its storage::AppendObserver): group commit sizes, the durable write's latency, and
// RESOURCE_EXHAUSTED refusals. Collected at each scrape, from their owners:
//   - the log: head position, appends waiting for the writer, a cluster node's connection;
//   - per projection build (role live, shadow or previous): checkpoint, lag in events and in
//     seconds (the age of the oldest event it has not applied), events applied, availability;
//   - per rebuild (running and recent): phase, events done and total, rate and ETA;
//   - RocksDB, per database (log, projections): live data, pending compaction bytes, write
//     stalls;
//   - the process: RSS, open files, start time and uptime, and the build's version.
//
// Ownership and threads: the composition root (server.h) creates it first, hands it to the
// event store as its observer, and calls Attach() once everything it reads exists; it must
// outlive them all. Scrape() and the observer methods are thread-safe.
#pragma once

#include <memory>

#include "absl/time/time.h"
#include "domain/clock.h"
#include "server/api/call_metrics.h"
#include "server/metrics/metrics.h"
#include "server/read/projection_engine.h"
#include "server/read/rebuild_manager.h"
#include "storage/database.h"
#include "storage/event_store.h"

namespace fidelis::server {

class ServerMetrics : public storage::AppendObserver {
 public:
  ServerMetrics();

  CallMetrics* calls() { return &calls_; }

  // Adds the collectors that read these (not owned; null when absent).
  void Attach(const storage::EventStore* store, const ProjectionEngine* engine,
              const RebuildManager* rebuilds, const storage::Database* log_database,
              const storage::Database* projection_database, const Clock* clock);

  std::string Scrape() const { return registry_.Scrape(); }

  // storage::AppendObserver.
  void OnGroupCommitted(size_t appends, size_t events, absl::Duration write_time) override;
  void OnAppendRefused() override;

 private:
  metrics::Registry registry_;
  CallMetrics calls_;
  metrics::Histogram* const group_appends_;
  metrics::Histogram* const group_events_;
  metrics::Histogram* const write_seconds_;
  metrics::Counter* const refused_;
  const absl::Time started_;
};

}  // namespace fidelis::server
