#include "server/api/event_log_service.h"

#include <algorithm>
#include <deque>

#include "domain/errors.h"
#include "domain/event_types.h"
#include "domain/strings.h"
#include "google/protobuf/util/time_util.h"
#include "server/api/grpc_status.h"
#include "server/api/stream_reactor.h"

namespace fidelis::server {
namespace {

using google::protobuf::util::TimeUtil;

// Events read from the log per scan while a subscriber catches up.
constexpr size_t kSubscribeScan = 256;

// One SubscribeAll call: events from `from` on, then every new one as the log's head advances.
class SubscribeAllReactor final : public StreamReactor<v1::RecordedEvent>,
                                  private storage::HeadListener {
 public:
  SubscribeAllReactor(const storage::EventStore* store, const EventRegistry* registry,
                      uint64_t from, ServingState* serving, const Clock* clock)
      : StreamReactor(serving, clock), store_(store), registry_(registry), next_(from) {
    store_->AddHeadListener(this);
    Begin();
  }

 private:
  Next Advance() override {
    Next next;
    if (buffer_.empty()) {
      absl::Status scanned = store_->Scan(next_, kSubscribeScan, [&](const v1::StoredEvent& event) {
        buffer_.push_back(ToRecordedEvent(event, *registry_));
        return true;
      });
      if (!scanned.ok()) {
        next.end = ToGrpcStatus(scanned);
        return next;
      }
      if (buffer_.empty()) return next;  // Caught up: OnHeadAdvanced wakes this stream.
      next_ = buffer_.back().global_position() + 1;
    }
    next.message = std::make_unique<v1::RecordedEvent>(std::move(buffer_.front()));
    buffer_.pop_front();
    return next;
  }

  void Detach() override { store_->RemoveHeadListener(this); }

  void OnHeadAdvanced(uint64_t /*head*/) override { Wake(); }

  const storage::EventStore* const store_;
  const EventRegistry* const registry_;
  uint64_t next_;  // The position of the next event to read from the log.
  std::deque<v1::RecordedEvent> buffer_;
};

}  // namespace

v1::RecordedEvent ToRecordedEvent(const v1::StoredEvent& event, const EventRegistry& registry) {
  v1::RecordedEvent out;
  out.set_global_position(event.global_position());
  out.set_stream_id(event.stream_id());
  out.set_category(std::string(CategoryOf(event.stream_id())));
  out.set_stream_version(event.stream_version());
  out.set_type(event.type());
  out.set_schema_version(event.schema_version());
  *out.mutable_timestamp() = TimeUtil::MicrosecondsToTimestamp(event.timestamp_micros());
  *out.mutable_metadata() = event.metadata();
  auto payload = registry.ParseAsStored(event.type(), event.schema_version(), event.payload());
  if (payload.ok()) {
    out.mutable_payload()->PackFrom(**payload);
  } else {
    // Unknown to this binary: keep the bytes under a type URL that says so.
    out.mutable_payload()->set_type_url(
        StrCat("type.googleapis.com/fidelis.unknown.", event.type()));
    out.mutable_payload()->set_value(event.payload());
  }
  return out;
}

grpc::Status EventLogService::ReadStream(grpc::ServerContext* context,
                                         const v1::ReadStreamRequest* request,
                                         v1::ReadStreamResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  const std::string& stream = request->stream_id();
  if (stream.empty() || stream.size() > 256 || stream.find('\0') != std::string::npos) {
    return ToGrpcStatus(InvalidField("stream_id", "must be 1 to 256 bytes without NUL"));
  }
  if (request->from_version() < 0) {
    return ToGrpcStatus(InvalidField("from_version", "must not be negative"));
  }
  if (request->max_count() < 0 || request->max_count() > kMaxReadCount) {
    return ToGrpcStatus(InvalidField("max_count", StrCat("must be between 0 and ", kMaxReadCount)));
  }
  absl::StatusOr<int64_t> version = store_->StreamVersion(stream);
  if (!version.ok()) return ToGrpcStatus(version.status());
  if (*version == 0) {
    return ToGrpcStatus(absl::NotFoundError(StrCat("stream ", stream, " does not exist")));
  }
  const size_t max = request->max_count() == 0 ? kMaxReadCount : request->max_count();
  auto events = store_->ReadStream(stream, request->from_version(), max);
  if (!events.ok()) return ToGrpcStatus(events.status());
  for (const auto& event : *events) *response->add_events() = ToRecordedEvent(event, *registry_);
  response->set_stream_version(*version);
  return grpc::Status::OK;
}

grpc::Status EventLogService::ReadAll(grpc::ServerContext* context,
                                      const v1::ReadAllRequest* request,
                                      v1::ReadAllResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  if (request->max_count() < 0 || request->max_count() > kMaxReadCount) {
    return ToGrpcStatus(InvalidField("max_count", StrCat("must be between 0 and ", kMaxReadCount)));
  }
  const size_t max = request->max_count() == 0 ? kMaxReadCount : request->max_count();
  response->set_head_position(store_->HeadPosition());
  absl::Status status =
      store_->Scan(request->from_position(), max, [&](const v1::StoredEvent& event) {
        *response->add_events() = ToRecordedEvent(event, *registry_);
        return true;
      });
  return ToGrpcStatus(status);
}

grpc::ServerWriteReactor<v1::RecordedEvent>* EventLogService::SubscribeAll(
    grpc::CallbackServerContext* context, const v1::SubscribeAllRequest* request) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    auto* refused = new FinishedStream<v1::RecordedEvent>(ToGrpcStatus(denied));
    return refused;
  }
  return new SubscribeAllReactor(store_, registry_, std::max<uint64_t>(request->from_position(), 1),
                                 serving_, clock_);
}

}  // namespace fidelis::server
