#include "server/api/projection_admin_service.h"

#include "domain/errors.h"
#include "domain/strings.h"
#include "google/protobuf/util/time_util.h"
#include "server/api/grpc_status.h"
#include "server/api/rebuild_progress_reactor.h"
#include "server/api/stream_reactor.h"

namespace fidelis::server {
namespace {

v1::ProjectionBuild DescribeBuild(const ProjectionRunner& runner, uint64_t head) {
  v1::ProjectionBuild build;
  build.set_build(runner.build().ToString());
  build.set_version(runner.build().version);
  const uint64_t checkpoint = runner.checkpoint();
  build.set_checkpoint(checkpoint);
  build.set_lag(head > checkpoint ? head - checkpoint : 0);
  absl::Status available = runner.Availability();
  build.set_state(available.ok() ? "live" : std::string(available.message()));
  build.set_rebuild_id(runner.rebuild_id());
  return build;
}

}  // namespace

v1::ProjectionInfo DescribeProjection(const ProjectionView& view, uint64_t head) {
  v1::ProjectionInfo info;
  info.set_name(view.name);
  *info.mutable_live() = DescribeBuild(*view.live, head);
  info.set_version(info.live().version());
  info.set_checkpoint(info.live().checkpoint());
  info.set_lag(info.live().lag());
  info.set_head_position(head);
  info.set_state(info.live().state());
  info.set_rebuild_id(info.live().rebuild_id());
  info.set_newest_version(view.newest_version);
  info.set_rebuild_needed(view.live->build().version != view.newest_version ||
                          !view.live->Availability().ok());
  if (view.shadow) {
    *info.mutable_shadow() = DescribeBuild(*view.shadow, head);
    if (info.shadow().rebuild_id().empty()) {
      info.mutable_shadow()->set_rebuild_id(view.shadow_rebuild_id);
    }
    if (info.shadow().state() == "live") {
      info.mutable_shadow()->set_state("caught up; following new events until promoted");
    }
  }
  if (view.previous) {
    *info.mutable_previous() = DescribeBuild(*view.previous, head);
    *info.mutable_previous()->mutable_retire_at() =
        google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
            absl::ToUnixMicros(view.retire_at));
  }
  return info;
}

grpc::Status ProjectionAdminService::ListProjections(grpc::ServerContext* context,
                                                     const v1::ListProjectionsRequest*,
                                                     v1::ListProjectionsResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  const uint64_t head = store_->HeadPosition();
  for (const ProjectionView& view : engine_->Views()) {
    *response->add_projections() = DescribeProjection(view, head);
  }
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::Change(grpc::ServerContext* context,
                                            std::string_view projection,
                                            const std::function<absl::Status()>& change,
                                            v1::ProjectionInfo* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  if (absl::Status done = change(); !done.ok()) return ToGrpcStatus(done);
  absl::StatusOr<ProjectionView> view = engine_->View(projection);
  if (!view.ok()) return ToGrpcStatus(view.status());
  *response = DescribeProjection(*view, store_->HeadPosition());
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::PromoteProjection(grpc::ServerContext* context,
                                                       const v1::PromoteProjectionRequest* request,
                                                       v1::ProjectionInfo* response) {
  return Change(
      context, request->projection(), [&] { return engine_->Promote(request->projection()); },
      response);
}

grpc::Status ProjectionAdminService::AbortRebuild(grpc::ServerContext* context,
                                                  const v1::AbortRebuildRequest* request,
                                                  v1::ProjectionInfo* response) {
  return Change(
      context, request->projection(), [&] { return rebuilds_->Abort(request->projection()); },
      response);
}

grpc::Status ProjectionAdminService::RollbackProjection(
    grpc::ServerContext* context, const v1::RollbackProjectionRequest* request,
    v1::ProjectionInfo* response) {
  return Change(
      context, request->projection(), [&] { return engine_->Rollback(request->projection()); },
      response);
}

grpc::Status ProjectionAdminService::RetireProjection(grpc::ServerContext* context,
                                                      const v1::RetireProjectionRequest* request,
                                                      v1::ProjectionInfo* response) {
  return Change(
      context, request->projection(),
      [&] { return engine_->RetirePrevious(request->projection()); }, response);
}

grpc::Status ProjectionAdminService::DiffProjection(grpc::ServerContext* context,
                                                    const v1::DiffProjectionRequest* request,
                                                    v1::DiffProjectionResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  if (request->max_differences() < 0 || request->max_differences() > 1000) {
    return ToGrpcStatus(InvalidField(
        "max_differences", StrCat("must be between 0 and 1000, got ", request->max_differences())));
  }
  for (auto [field, value] : {std::pair{"a", &request->a()}, std::pair{"b", &request->b()}}) {
    if (value->empty()) return ToGrpcStatus(InvalidField(field, "is required"));
  }
  absl::StatusOr<v1::DiffProjectionResponse> diff =
      engine_->Diff(request->projection(), request->a(), request->b(),
                    request->max_differences() == 0 ? 20 : request->max_differences());
  if (!diff.ok()) return ToGrpcStatus(diff.status());
  *response = std::move(*diff);
  return grpc::Status::OK;
}

grpc::ServerWriteReactor<v1::RebuildProgress>* ProjectionAdminService::RebuildProjection(
    grpc::CallbackServerContext* context, const v1::RebuildProjectionRequest* request) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return new FinishedStream<v1::RebuildProgress>(ToGrpcStatus(denied));
  }
  absl::StatusOr<std::vector<std::shared_ptr<RebuildJob>>> jobs = rebuilds_->Start(*request);
  if (!jobs.ok()) return new FinishedStream<v1::RebuildProgress>(ToGrpcStatus(jobs.status()));
  if (jobs->empty()) return new FinishedStream<v1::RebuildProgress>(grpc::Status::OK);
  return new RebuildProgressReactor(*std::move(jobs), serving_, clock_);
}

grpc::ServerWriteReactor<v1::RebuildProgress>* ProjectionAdminService::WatchRebuild(
    grpc::CallbackServerContext* context, const v1::WatchRebuildRequest* request) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return new FinishedStream<v1::RebuildProgress>(ToGrpcStatus(denied));
  }
  absl::StatusOr<std::shared_ptr<RebuildJob>> job = rebuilds_->Get(request->rebuild_id());
  if (!job.ok()) return new FinishedStream<v1::RebuildProgress>(ToGrpcStatus(job.status()));
  return new RebuildProgressReactor({*std::move(job)}, serving_, clock_);
}

grpc::Status ProjectionAdminService::GetRebuild(grpc::ServerContext* context,
                                                const v1::GetRebuildRequest* request,
                                                v1::RebuildInfo* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  auto job = rebuilds_->Get(request->rebuild_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = (*job)->Info();
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::ListRebuilds(grpc::ServerContext* context,
                                                  const v1::ListRebuildsRequest*,
                                                  v1::ListRebuildsResponse* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kClient); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  for (const auto& job : rebuilds_->List()) *response->add_rebuilds() = job->Info();
  return grpc::Status::OK;
}

grpc::Status ProjectionAdminService::CancelRebuild(grpc::ServerContext* context,
                                                   const v1::CancelRebuildRequest* request,
                                                   v1::RebuildInfo* response) {
  if (absl::Status denied = auth_->Check(*context, Scope::kAdmin); !denied.ok()) {
    return ToGrpcStatus(denied);
  }
  auto job = rebuilds_->Cancel(request->rebuild_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = (*job)->Info();
  return grpc::Status::OK;
}

}  // namespace fidelis::server
