// ProjectionAdminService: fidelis.v1.ProjectionAdmin, the projections as an operator drives
// them: list them, rebuild them (in place or blue-green) with streamed progress, watch, cancel,
// promote, abort, roll back, retire and diff.
//
// RebuildProjection and WatchRebuild are callback streams (rebuild_progress_reactor.h) that
// follow the job as a RebuildJob::Listener, with one write in flight and no thread per
// watcher. The other methods are synchronous. Every method that changes a projection needs the
// admin token (auth.h).
//
// Thread-safety: immutable after construction; nothing passed in is owned, and everything must
// outlive the service.
#pragma once

#include <string_view>

#include "domain/clock.h"
#include "fidelis/v1/admin.grpc.pb.h"
#include "server/api/auth.h"
#include "server/api/serving_state.h"
#include "server/read/projection_engine.h"
#include "server/read/rebuild_manager.h"
#include "storage/event_store.h"

namespace fidelis::server {

using ProjectionAdminBase = v1::ProjectionAdmin::WithCallbackMethod_RebuildProjection<
    v1::ProjectionAdmin::WithCallbackMethod_WatchRebuild<v1::ProjectionAdmin::Service>>;

class ProjectionAdminService final : public ProjectionAdminBase {
 public:
  ProjectionAdminService(ProjectionEngine* engine, const storage::EventStore* store,
                         RebuildManager* rebuilds, ServingState* serving, const Authenticator* auth,
                         const Clock* clock)
      : engine_(engine),
        store_(store),
        rebuilds_(rebuilds),
        serving_(serving),
        auth_(auth),
        clock_(clock) {}

  grpc::Status ListProjections(grpc::ServerContext* context,
                               const v1::ListProjectionsRequest* request,
                               v1::ListProjectionsResponse* response) override;
  // Streams every phase change, and otherwise at most ten and at least one message a second,
  // until the job's result; with several projections, one job after the other.
  grpc::ServerWriteReactor<v1::RebuildProgress>* RebuildProjection(
      grpc::CallbackServerContext* context, const v1::RebuildProjectionRequest* request) override;
  // As RebuildProjection, for a job that runs already; the job goes on when the watcher leaves.
  grpc::ServerWriteReactor<v1::RebuildProgress>* WatchRebuild(
      grpc::CallbackServerContext* context, const v1::WatchRebuildRequest* request) override;
  grpc::Status GetRebuild(grpc::ServerContext* context, const v1::GetRebuildRequest* request,
                          v1::RebuildInfo* response) override;
  grpc::Status ListRebuilds(grpc::ServerContext* context, const v1::ListRebuildsRequest* request,
                            v1::ListRebuildsResponse* response) override;
  grpc::Status CancelRebuild(grpc::ServerContext* context, const v1::CancelRebuildRequest* request,
                             v1::RebuildInfo* response) override;
  grpc::Status PromoteProjection(grpc::ServerContext* context,
                                 const v1::PromoteProjectionRequest* request,
                                 v1::ProjectionInfo* response) override;
  grpc::Status AbortRebuild(grpc::ServerContext* context, const v1::AbortRebuildRequest* request,
                            v1::ProjectionInfo* response) override;
  grpc::Status RollbackProjection(grpc::ServerContext* context,
                                  const v1::RollbackProjectionRequest* request,
                                  v1::ProjectionInfo* response) override;
  grpc::Status RetireProjection(grpc::ServerContext* context,
                                const v1::RetireProjectionRequest* request,
                                v1::ProjectionInfo* response) override;
  grpc::Status DiffProjection(grpc::ServerContext* context,
                              const v1::DiffProjectionRequest* request,
                              v1::DiffProjectionResponse* response) override;

 private:
  // Runs `change` under the admin token and answers with the projection's state after it.
  grpc::Status Change(grpc::ServerContext* context, std::string_view projection,
                      const std::function<absl::Status()>& change, v1::ProjectionInfo* response);

  ProjectionEngine* const engine_;
  const storage::EventStore* const store_;
  RebuildManager* const rebuilds_;
  ServingState* const serving_;
  const Authenticator* const auth_;
  const Clock* const clock_;
};

// The API form of a projection's builds as the engine holds them, lag measured to `head`.
v1::ProjectionInfo DescribeProjection(const ProjectionView& view, uint64_t head);

}  // namespace fidelis::server
