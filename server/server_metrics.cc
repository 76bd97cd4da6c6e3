#include "server/server_metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "domain/version.h"
#include "fidelis/v1/admin.pb.h"
#include "rocksdb/db.h"

namespace fidelis::server {
namespace {

using metrics::Labels;
using metrics::MetricFamily;
using metrics::Type;

MetricFamily& Add(std::vector<MetricFamily>* out, std::string name, std::string help, Type type) {
  MetricFamily& family = out->emplace_back();
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

uint64_t ResidentBytes() {
  long pages = 0;
  long resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

int OpenFiles() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    closedir(dir);
    --count;  // The directory's own descriptor.
  }
  return count;
}

}  // namespace

ServerMetrics::ServerMetrics()
    : calls_(&registry_),
      group_appends_(registry_
                         .AddHistogram("fidelis_group_commit_appends",
                                       "Append requests decided together by one group commit.", {},
                                       metrics::PowersOfTwo(512))
                         ->With({})),
      group_events_(registry_
                        .AddHistogram("fidelis_group_commit_events",
                                      "Events written by one group commit.", {},
                                      metrics::PowersOfTwo(16384))
                        ->With({})),
      write_seconds_(registry_
                         .AddHistogram("fidelis_log_write_duration_seconds",
                                       "One group commit's durable write: the synced WAL write "
                                       "of the embedded log, or a cluster node's publish until "
                                       "its quorum acknowledgement.",
                                       {}, metrics::LatencyBuckets())
                         ->With({})),
      refused_(registry_
                   .AddCounter("fidelis_append_refusals_total",
                               "Appends refused with RESOURCE_EXHAUSTED because too many were "
                               "waiting for the log's writer.",
                               {})
                   ->With({})),
      started_(absl::Now()) {}

void ServerMetrics::OnGroupCommitted(size_t appends, size_t events, absl::Duration write_time) {
  group_appends_->Observe(static_cast<double>(appends));
  group_events_->Observe(static_cast<double>(events));
  write_seconds_->Observe(absl::ToDoubleSeconds(write_time));
}

void ServerMetrics::OnAppendRefused() { refused_->Increment(); }

void ServerMetrics::Attach(const storage::EventStore* store, const ProjectionEngine* engine,
                           const RebuildManager* rebuilds, const storage::Database* log_database,
                           const storage::Database* projection_database, const Clock* clock) {
  const absl::Time started = started_;
  registry_.AddCollector([started](std::vector<MetricFamily>* out) {
    Add(out, "process_resident_memory_bytes", "Resident set size.", Type::kGauge)
        .samples.push_back({{}, static_cast<double>(ResidentBytes())});
    Add(out, "process_open_fds", "Open file descriptors.", Type::kGauge)
        .samples.push_back({{}, static_cast<double>(OpenFiles())});
    Add(out, "process_start_time_seconds", "When the process started, in Unix seconds.",
        Type::kGauge)
        .samples.push_back({{}, absl::ToDoubleSeconds(started - absl::UnixEpoch())});
    Add(out, "fidelis_uptime_seconds", "Seconds since the server started.", Type::kGauge)
        .samples.push_back({{}, absl::ToDoubleSeconds(absl::Now() - started)});
    Add(out, "fidelis_build_info", "The running build: always 1, with its version and commit.",
        Type::kGauge)
        .samples.push_back(
            {{{"version", std::string(Version())}, {"commit", std::string(GitCommit())}}, 1});
  });
  if (store != nullptr) {
    registry_.AddCollector([store](std::vector<MetricFamily>* out) {
      Add(out, "fidelis_log_head_position", "The global position of the log's newest event.",
          Type::kGauge)
          .samples.push_back({{}, static_cast<double>(store->HeadPosition())});
      Add(out, "fidelis_append_queue_depth", "Appends waiting for the log's writer.", Type::kGauge)
          .samples.push_back({{}, static_cast<double>(store->PendingAppends())});
      Add(out, "fidelis_log_reachable",
          "1 when the log of record is reachable (always, for the embedded log).", Type::kGauge)
          .samples.push_back({{}, store->reachable() ? 1.0 : 0.0});
    });
  }
  if (engine != nullptr && store != nullptr) {
    registry_.AddCollector([engine, store, clock](std::vector<MetricFamily>* out) {
      const uint64_t head = store->HeadPosition();
      const absl::Time now = clock->Now();
      MetricFamily& checkpoint =
          Add(out, "fidelis_projection_checkpoint",
              "The last global position a projection build applied.", Type::kGauge);
      MetricFamily& lag =
          Add(out, "fidelis_projection_lag_events",
              "Events in the log that a projection build has not applied.", Type::kGauge);
      MetricFamily& lag_seconds =
          Add(out, "fidelis_projection_lag_seconds",
              "Age of the oldest event a projection build has not applied; 0 when caught up.",
              Type::kGauge);
      MetricFamily& applied = Add(out, "fidelis_projection_events_applied_total",
                                  "Log positions a projection build applied since the server "
                                  "started.",
                                  Type::kCounter);
      MetricFamily& available = Add(out, "fidelis_projection_available",
                                    "1 when queries can read the build.", Type::kGauge);
      for (const ProjectionView& view : engine->Views()) {
        const std::pair<const char*, const ProjectionRunner*> builds[] = {
            {"live", view.live.get()},
            {"shadow", view.shadow.get()},
            {"previous", view.previous.get()}};
        for (const auto& [role, runner] : builds) {
          if (runner == nullptr) continue;
          const Labels labels = {
              {"projection", view.name}, {"build", runner->build().ToString()}, {"role", role}};
          const uint64_t at = runner->checkpoint();
          double behind_seconds = 0;
          if (at < head) {
            store
                ->Scan(at + 1, 1,
                       [&](const v1::StoredEvent& event) {
                         behind_seconds = std::max(
                             0.0, absl::ToDoubleSeconds(
                                      now - absl::FromUnixMicros(event.timestamp_micros())));
                         return false;
                       })
                .IgnoreError();
          }
          checkpoint.samples.push_back({labels, static_cast<double>(at)});
          lag.samples.push_back({labels, static_cast<double>(head > at ? head - at : 0)});
          lag_seconds.samples.push_back({labels, behind_seconds});
          applied.samples.push_back({labels, static_cast<double>(runner->events_applied())});
          available.samples.push_back({labels, runner->Availability().ok() ? 1.0 : 0.0});
        }
      }
    });
  }
  if (rebuilds != nullptr) {
    registry_.AddCollector([rebuilds](std::vector<MetricFamily>* out) {
      MetricFamily& phase =
          Add(out, "fidelis_rebuild_phase",
              "1 for each running or recent rebuild, with its phase as a label.", Type::kGauge);
      MetricFamily& done = Add(out, "fidelis_rebuild_events_processed",
                               "Events a rebuild has replayed.", Type::kGauge);
      MetricFamily& total = Add(out, "fidelis_rebuild_events_total",
                                "Events a rebuild has to replay: the log's head when it "
                                "started, plus what arrived since.",
                                Type::kGauge);
      MetricFamily& rate =
          Add(out, "fidelis_rebuild_events_per_second",
              "A rebuild's replay rate, smoothed over the last seconds.", Type::kGauge);
      MetricFamily& eta = Add(out, "fidelis_rebuild_eta_seconds",
                              "Seconds a rebuild expects to need still.", Type::kGauge);
      for (const auto& job : rebuilds->List()) {
        const v1::RebuildProgress p = job->Progress();
        const Labels labels = {{"rebuild_id", job->id()}, {"projection", job->projection()}};
        Labels with_phase = labels;
        with_phase.emplace_back("phase", v1::RebuildPhase_Name(p.phase()));
        phase.samples.push_back({with_phase, 1});
        done.samples.push_back({labels, static_cast<double>(p.events_processed())});
        total.samples.push_back({labels, static_cast<double>(p.events_total())});
        rate.samples.push_back({labels, p.events_per_second()});
        eta.samples.push_back({labels, p.eta_seconds()});
      }
    });
  }
  const std::pair<const char*, const storage::Database*> databases[] = {
      {"log", log_database}, {"projections", projection_database}};
  std::vector<std::pair<std::string, const storage::Database*>> present;
  for (const auto& [name, database] : databases) {
    if (database != nullptr) present.emplace_back(name, database);
  }
  registry_.AddCollector([present](std::vector<MetricFamily>* out) {
    MetricFamily& live = Add(out, "fidelis_rocksdb_live_data_bytes",
                             "RocksDB's estimate of its live data, by database.", Type::kGauge);
    MetricFamily& pending = Add(out, "fidelis_rocksdb_pending_compaction_bytes",
                                "Bytes RocksDB estimates compaction has to rewrite.", Type::kGauge);
    MetricFamily& stalls =
        Add(out, "fidelis_rocksdb_write_stalls_total",
            "Writes RocksDB stopped or slowed down, since it opened.", Type::kCounter);
    MetricFamily& stopped =
        Add(out, "fidelis_rocksdb_write_stopped", "1 while RocksDB stops writes.", Type::kGauge);
    for (const auto& [name, database] : present) {
      rocksdb::DB* db = database->db();
      uint64_t value = 0;
      live.samples.push_back(
          {{{"db", name}},
           db->GetAggregatedIntProperty("rocksdb.estimate-live-data-size", &value)
               ? static_cast<double>(value)
               : 0.0});
      value = 0;
      pending.samples.push_back(
          {{{"db", name}},
           db->GetAggregatedIntProperty("rocksdb.estimate-pending-compaction-bytes", &value)
               ? static_cast<double>(value)
               : 0.0});
      double stop = 0;
      double slowdown = 0;
      for (const std::string& family : database->FamilyNames()) {
        std::map<std::string, std::string> stats;
        rocksdb::ColumnFamilyHandle* handle = database->Family(family);
        if (handle == nullptr ||
            !db->GetMapProperty(handle, rocksdb::DB::Properties::kCFStats, &stats)) {
          continue;
        }
        stop += std::strtod(stats["io_stalls.total_stop"].c_str(), nullptr);
        slowdown += std::strtod(stats["io_stalls.total_slowdown"].c_str(), nullptr);
      }
      stalls.samples.push_back({{{"db", name}, {"kind", "stop"}}, stop});
      stalls.samples.push_back({{{"db", name}, {"kind", "slowdown"}}, slowdown});
      value = 0;
      stopped.samples.push_back(
          {{{"db", name}},
           db->GetIntProperty("rocksdb.is-write-stopped", &value) && value ? 1.0 : 0.0});
    }
  });
}

}  // namespace fidelis::server
