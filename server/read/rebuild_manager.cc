#include "server/read/rebuild_manager.h"

#include "domain/errors.h"
#include "domain/ids.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "spdlog/spdlog.h"
#include "storage/thread_name.h"

namespace fidelis::server {
namespace {

// Finished jobs kept for GetRebuild and ListRebuilds.
constexpr size_t kKeptFinishedJobs = 100;

}  // namespace

RebuildManager::RebuildManager(ProjectionEngine* engine, const storage::EventStore* events,
                               const EventRegistry* registry, const Clock* clock,
                               RebuildTuning tuning, RebuildObserver* observer)
    : engine_(engine),
      events_(events),
      registry_(registry),
      clock_(clock),
      tuning_(tuning),
      observer_(observer) {}

RebuildManager::~RebuildManager() { Shutdown(); }

std::shared_ptr<RebuildJob> RebuildManager::NewJob(std::string id,
                                                   std::shared_ptr<ProjectionRunner> target,
                                                   v1::RebuildMode mode, bool resumed,
                                                   v1::RebuildProjectionRequest request) const {
  return std::make_shared<RebuildJob>(std::move(id), engine_, std::move(target), mode, resumed,
                                      events_, registry_, clock_, std::move(request), tuning_,
                                      observer_);
}

std::shared_ptr<RebuildJob> RebuildManager::RunningFor(std::string_view projection) const {
  for (const auto& job : jobs_) {
    if (job->projection() == projection && !job->finished()) return job;
  }
  return nullptr;
}

void RebuildManager::Launch(const std::shared_ptr<RebuildJob>& job) {
  jobs_.push_back(job);
  threads_.emplace_back(job, std::thread([job] {
                          storage::NameThisThread(StrCat("rebuild ", job->projection()));
                          job->Run();
                        }));
  // Reap the threads of finished jobs, and forget the oldest finished jobs beyond the kept
  // number.
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (it->first->finished()) {
      it->second.join();
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
  size_t finished = 0;
  for (const auto& kept : jobs_) finished += kept->finished() ? 1 : 0;
  for (auto it = jobs_.begin(); it != jobs_.end() && finished > kKeptFinishedJobs;) {
    if ((*it)->finished()) {
      it = jobs_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
}

absl::StatusOr<std::vector<std::shared_ptr<RebuildJob>>> RebuildManager::Start(
    const v1::RebuildProjectionRequest& request) {
  RETURN_IF_ERROR(ValidateRebuildRequest(request));
  std::vector<ProjectionView> views;
  if (request.projection().empty()) {
    views = engine_->Views();
  } else {
    ASSIGN_OR_RETURN(ProjectionView view, engine_->View(request.projection()));
    views.push_back(std::move(view));
  }
  absl::MutexLock lock(&mu_);
  if (shut_down_) return absl::UnavailableError("the server is shutting down");
  std::vector<v1::RebuildMode> modes;
  for (const ProjectionView& view : views) {
    if (auto job = RunningFor(view.name)) {
      return absl::FailedPreconditionError(StrCat("projection ", view.name,
                                                  " is already being rebuilt by rebuild ",
                                                  job->id(), "; watch or cancel it first"));
    }
    v1::RebuildMode mode = request.mode();
    if (mode == v1::MODE_UNSPECIFIED) {
      mode = view.live->Availability().ok() ? v1::BLUE_GREEN : v1::IN_PLACE;
    }
    if (mode == v1::IN_PLACE && request.target_version() != 0 &&
        request.target_version() != view.live->build().version) {
      return InvalidField(
          "target_version",
          StrCat("an in-place rebuild rebuilds the live version ", view.live->build().ToString(),
                 " of ", view.name, "; use BLUE_GREEN to build v", request.target_version()));
    }
    if (mode == v1::IN_PLACE && request.no_promote()) {
      return InvalidField("no_promote", StrCat(view.name,
                                               " is rebuilt in place (it needs a "
                                               "rebuild); no_promote applies to BLUE_GREEN"));
    }
    if (mode == v1::BLUE_GREEN && view.shadow) {
      return absl::FailedPreconditionError(
          StrCat("projection ", view.name, " already has a shadow build ",
                 view.shadow->build().ToString(), "; promote or abort it first"));
    }
    modes.push_back(mode);
  }
  std::vector<std::shared_ptr<RebuildJob>> started;
  for (size_t i = 0; i < views.size(); ++i) {
    const ProjectionView& view = views[i];
    std::string id = StrCat("rb-", NewId().substr(0, 12));
    v1::RebuildProjectionRequest own = request;
    own.set_projection(view.name);
    own.set_mode(modes[i]);
    std::shared_ptr<ProjectionRunner> target = view.live;
    if (modes[i] == v1::BLUE_GREEN) {
      const uint32_t version =
          request.target_version() != 0 ? request.target_version() : view.newest_version;
      own.set_target_version(version);
      ASSIGN_OR_RETURN(target, engine_->CreateShadow(view.name, version, id, own));
    }
    auto job = NewJob(std::move(id), std::move(target), modes[i], /*resumed=*/false, own);
    Launch(job);
    started.push_back(job);
  }
  return started;
}

void RebuildManager::ResumeInterrupted() {
  absl::MutexLock lock(&mu_);
  for (ResumableShadow& resumable : engine_->TakeResumable()) {
    spdlog::info("resuming rebuild {} of {} into {} from checkpoint {}", resumable.rebuild_id,
                 resumable.projection, resumable.shadow->build().ToString(),
                 resumable.shadow->checkpoint());
    v1::RebuildProjectionRequest request = resumable.request;
    request.set_projection(resumable.projection);
    request.set_mode(v1::BLUE_GREEN);
    Launch(NewJob(resumable.rebuild_id, std::move(resumable.shadow), v1::BLUE_GREEN,
                  /*resumed=*/true, request));
  }
}

absl::Status RebuildManager::Abort(std::string_view projection) {
  // Holds no build: the engine waits for every holder of the shadow before dropping it.
  auto has_shadow = [&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(ProjectionView view, engine_->View(projection));
    return view.shadow != nullptr;
  };
  RETURN_IF_ERROR(has_shadow().status());
  std::shared_ptr<RebuildJob> job;
  {
    absl::MutexLock lock(&mu_);
    job = RunningFor(projection);
  }
  if (job && job->mode() == v1::IN_PLACE) {
    return absl::FailedPreconditionError(
        StrCat("rebuild ", job->id(), " of ", projection,
               " runs in place and has no shadow to drop; stop it with CancelRebuild"));
  }
  if (job) {
    // The job drops its shadow as it stops.
    job->Cancel();
    if (!job->AwaitFinished(absl::Seconds(30))) {
      return absl::UnavailableError(StrCat("rebuild ", job->id(), " did not stop in time"));
    }
    ASSIGN_OR_RETURN(bool left, has_shadow());
    if (!left) return absl::OkStatus();
  } else {
    ASSIGN_OR_RETURN(bool exists, has_shadow());
    if (!exists) {
      return absl::FailedPreconditionError(
          StrCat("projection ", projection, " has no blue-green rebuild to abort"));
    }
  }
  return engine_->DropShadow(projection);
}

absl::StatusOr<std::shared_ptr<RebuildJob>> RebuildManager::Cancel(std::string_view id) {
  ASSIGN_OR_RETURN(std::shared_ptr<RebuildJob> job, Get(id));
  if (job->finished()) {
    return absl::FailedPreconditionError(StrCat("rebuild ", id, " has already finished"));
  }
  job->Cancel();
  // Report the state once the job has stopped, so the caller sees CANCELLED (or the phase it
  // reached if it finished first).
  job->AwaitFinished(absl::Seconds(10));
  return job;
}

absl::StatusOr<std::shared_ptr<RebuildJob>> RebuildManager::Get(std::string_view id) const {
  absl::MutexLock lock(&mu_);
  for (const auto& job : jobs_) {
    if (job->id() == id) return job;
  }
  return absl::NotFoundError(StrCat("no rebuild with id '", id.substr(0, 64), "'"));
}

std::vector<std::shared_ptr<RebuildJob>> RebuildManager::List() const {
  absl::MutexLock lock(&mu_);
  return {jobs_.rbegin(), jobs_.rend()};
}

void RebuildManager::Shutdown() {
  std::vector<std::pair<std::shared_ptr<RebuildJob>, std::thread>> threads;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    for (const auto& job : jobs_) job->Cancel(/*for_shutdown=*/true);
    threads.swap(threads_);
  }
  for (auto& [job, thread] : threads) thread.join();
}

}  // namespace fidelis::server
