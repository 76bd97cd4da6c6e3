// EventLogService: fidelis.v1.EventLog, the log as clients read it: one stream's events, the
// whole log in order, and a live subscription to it.
//
// ReadStream and ReadAll are synchronous. SubscribeAll is a callback stream
// (stream_reactor.h): it follows the head of the log as a HeadListener of the store and keeps
// one write in flight, so a subscriber holds no thread while it waits for new events.
//
// Thread-safety: immutable after construction; the store, registry, serving state,
// authenticator and clock are not owned and must outlive the service.
#pragma once

#include "domain/clock.h"
#include "domain/event_registry.h"
#include "fidelis/v1/event_log.grpc.pb.h"
#include "server/api/auth.h"
#include "server/api/serving_state.h"
#include "storage/event_store.h"

namespace fidelis::server {

inline constexpr int kMaxReadCount = 1000;

class EventLogService final
    : public v1::EventLog::WithCallbackMethod_SubscribeAll<v1::EventLog::Service> {
 public:
  EventLogService(const storage::EventStore* store, const EventRegistry* registry,
                  ServingState* serving, const Authenticator* auth, const Clock* clock)
      : store_(store), registry_(registry), serving_(serving), auth_(auth), clock_(clock) {}

  grpc::Status ReadStream(grpc::ServerContext* context, const v1::ReadStreamRequest* request,
                          v1::ReadStreamResponse* response) override;
  grpc::Status ReadAll(grpc::ServerContext* context, const v1::ReadAllRequest* request,
                       v1::ReadAllResponse* response) override;
  grpc::ServerWriteReactor<v1::RecordedEvent>* SubscribeAll(
      grpc::CallbackServerContext* context, const v1::SubscribeAllRequest* request) override;

 private:
  const storage::EventStore* const store_;
  const EventRegistry* const registry_;
  ServingState* const serving_;
  const Authenticator* const auth_;
  const Clock* const clock_;
};

// Converts a stored event to its API form, decoding the payload as stored.
v1::RecordedEvent ToRecordedEvent(const v1::StoredEvent& event, const EventRegistry& registry);

}  // namespace fidelis::server
