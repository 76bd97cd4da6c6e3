#include "server/replay.h"

#include <algorithm>

#include "domain/event_types.h"
#include "domain/strings.h"
#include "spdlog/spdlog.h"

namespace fidelis::server {

absl::Status ReplayRange(const storage::EventStore& store, EventDecoder& decoder,
                         const Projector& projector, uint64_t after_position, size_t max_events,
                         const ReplayPolicy& policy, RowStore& rows, ReplayStats& stats,
                         const std::string& label) {
  const std::vector<std::string>& categories = projector.categories();
  absl::Status stop;
  absl::Status scanned =
      store.Scan(after_position + 1, max_events, [&](const v1::StoredEvent& event) {
        const std::string_view category = CategoryOf(event.stream_id());
        if (std::find(categories.begin(), categories.end(), category) == categories.end()) {
          ++stats.events_processed;
          stats.last_position = event.global_position();
          return true;
        }
        absl::StatusOr<const google::protobuf::Message*> decoded =
            decoder.Decode(event.type(), event.schema_version(), event.payload());
        if (!decoded.ok()) {
          const bool unknown = decoded.status().code() == absl::StatusCode::kNotFound;
          std::string message(decoded.status().message());
          if (unknown ? !policy.skip_unknown_events : !policy.skip_handler_errors) {
            stop = absl::FailedPreconditionError(
                StrCat("event ", event.type(), " v", event.schema_version(), " at global position ",
                       event.global_position(), ": ", message));
            stats.errors.push_back({event.global_position(), event.type(), message});
            return false;
          }
          spdlog::warn("{}: skipping {} event {} v{} at global position {}: {}", label,
                       unknown ? "unknown" : "undecodable", event.type(), event.schema_version(),
                       event.global_position(), message);
          if (!unknown && stats.errors.size() < kMaxRecordedErrors) {
            stats.errors.push_back({event.global_position(), event.type(), message});
          }
          ++stats.events_skipped;
          ++stats.events_processed;
          stats.last_position = event.global_position();
          return true;
        }
        EventView view;
        view.global_position = event.global_position();
        view.stream_id = event.stream_id();
        view.stream_version = event.stream_version();
        view.type = event.type();
        view.timestamp_micros = event.timestamp_micros();
        view.payload = *decoded;
        absl::Status applied = projector.Apply(view, rows);
        if (!applied.ok()) {
          if (!policy.skip_handler_errors) {
            stop = absl::FailedPreconditionError(
                StrCat("handler failed on ", event.type(), " at global position ",
                       event.global_position(), ": ", applied.message()));
            stats.errors.push_back(
                {event.global_position(), event.type(), std::string(applied.message())});
            return false;
          }
          spdlog::error("{}: handler failed on {} at global position {}: {}", label, event.type(),
                        event.global_position(), std::string(applied.message()));
          if (stats.errors.size() < kMaxRecordedErrors) {
            stats.errors.push_back(
                {event.global_position(), event.type(), std::string(applied.message())});
          }
          ++stats.events_skipped;
        } else {
          ++stats.events_dispatched;
        }
        ++stats.events_processed;
        stats.last_position = event.global_position();
        return true;
      });
  if (!scanned.ok()) return scanned;
  return stop;
}

}  // namespace fidelis::server
