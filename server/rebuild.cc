#include "server/rebuild.h"

#include <cmath>

#include "absl/time/clock.h"
#include "domain/errors.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "google/protobuf/util/time_util.h"
#include "server/command_handler.h"
#include "spdlog/spdlog.h"

namespace fidelis::server {
namespace {

using google::protobuf::util::TimeUtil;

// Finished jobs kept for GetRebuild and ListRebuilds.
constexpr size_t kKeptFinishedJobs = 100;
// Time constant of the events-per-second smoothing.
constexpr double kRateTauSeconds = 2.0;

bool Terminal(v1::RebuildPhase phase) {
  return phase == v1::DONE || phase == v1::FAILED || phase == v1::CANCELLED;
}

google::protobuf::Duration ToProto(absl::Duration d) {
  return TimeUtil::MicrosecondsToDuration(absl::ToInt64Microseconds(d));
}

ReplayPolicy PolicyOf(const v1::RebuildProjectionRequest& request) {
  ReplayPolicy policy;
  policy.skip_unknown_events = request.unknown_event_policy() != v1::FAIL;
  policy.skip_handler_errors = request.handler_error_policy() != v1::FAIL;
  return policy;
}

}  // namespace

absl::Status ValidateRebuildRequest(const v1::RebuildProjectionRequest& request) {
  if (request.batch_size() < 0 || request.batch_size() > kMaxRebuildBatchSize) {
    return InvalidField("batch_size", StrCat("must be between 0 and ", kMaxRebuildBatchSize,
                                             ", got ", request.batch_size()));
  }
  if (!v1::EventPolicy_IsValid(request.unknown_event_policy())) {
    return InvalidField("unknown_event_policy", "must be SKIP or FAIL");
  }
  if (!v1::EventPolicy_IsValid(request.handler_error_policy())) {
    return InvalidField("handler_error_policy", "must be SKIP or FAIL");
  }
  return absl::OkStatus();
}

RebuildJob::RebuildJob(std::string id, ProjectionRunner* runner, const storage::EventStore* events,
                       const EventRegistry* registry, v1::RebuildProjectionRequest request)
    : id_(std::move(id)),
      runner_(runner),
      events_(events),
      registry_(registry),
      request_(std::move(request)),
      projection_(runner->projector().name()),
      batch_size_(request_.batch_size() == 0 ? kDefaultRebuildBatchSize : request_.batch_size()),
      policy_(PolicyOf(request_)),
      started_(absl::Now()) {
  absl::MutexLock lock(&mu_);
  rate_updated_ = started_;
  events_total_ = events_->HeadPosition();
  phase_changes_.push_back(ProgressLocked());
}

v1::RebuildProgress RebuildJob::ProgressLocked() const {
  v1::RebuildProgress p;
  p.set_rebuild_id(id_);
  p.set_projection(projection_);
  p.set_phase(phase_);
  p.set_events_processed(stats_.events_processed);
  p.set_events_total(std::max(events_total_, stats_.events_processed));
  p.set_events_skipped(stats_.events_skipped);
  p.set_current_position(stats_.last_position);
  p.set_events_per_second(rate_);
  const uint64_t left = p.events_total() - p.events_processed();
  p.set_eta_seconds(Terminal(phase_) ? 0 : (rate_ > 0 ? left / rate_ : 0));
  *p.mutable_elapsed() = ToProto(finished_ ? elapsed_ : absl::Now() - started_);
  if (finished_) {
    v1::RebuildResult* r = p.mutable_result();
    r->set_projection_name(projection_);
    r->set_projectors_processed(1);
    r->set_categories_processed(runner_->projector().categories().size());
    r->set_events_dispatched(stats_.events_dispatched);
    r->set_events_skipped(stats_.events_skipped);
    r->set_events_processed(stats_.events_processed);
    for (const ReplayError& e : stats_.errors) {
      v1::RebuildError* error = r->add_errors();
      error->set_global_position(e.global_position);
      error->set_event_type(e.event_type);
      error->set_message(e.message);
    }
    r->set_success(phase_ == v1::DONE && stats_.errors.empty());
    *r->mutable_duration() = ToProto(elapsed_);
    r->set_failure(failure_);
  }
  return p;
}

void RebuildJob::SetPhase(v1::RebuildPhase phase) {
  absl::MutexLock lock(&mu_);
  phase_ = phase;
  phase_changes_.push_back(ProgressLocked());
  ++seq_;
  cv_.SignalAll();
}

void RebuildJob::Finish(v1::RebuildPhase phase, std::string failure) {
  {
    absl::MutexLock lock(&mu_);
    phase_ = phase;
    failure_ = std::move(failure);
    elapsed_ = absl::Now() - started_;
    finished_ = true;
    phase_changes_.push_back(ProgressLocked());
    ++seq_;
    cv_.SignalAll();
  }
  const v1::RebuildProgress last = Progress();
  spdlog::info("rebuild {} of {} {}: {} events processed, {} dispatched, {} skipped, {} errors{}{}",
               id_, projection_, v1::RebuildPhase_Name(phase), last.events_processed(),
               last.result().events_dispatched(), last.events_skipped(),
               last.result().errors_size(), last.result().failure().empty() ? "" : ": ",
               last.result().failure());
}

std::string RebuildJob::UnavailableReason() const {
  absl::MutexLock lock(&mu_);
  return StrCat("projection ", projection_, " is being rebuilt by rebuild ", id_, " (",
                v1::RebuildPhase_Name(phase_), ", ", stats_.events_processed, " of ",
                std::max(events_total_, stats_.events_processed), " events); retry later");
}

void RebuildJob::Cancel() {
  absl::MutexLock lock(&mu_);
  cancel_requested_ = true;
}

bool RebuildJob::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

v1::RebuildProgress RebuildJob::Progress() const {
  absl::MutexLock lock(&mu_);
  return ProgressLocked();
}

v1::RebuildInfo RebuildJob::Info() const {
  v1::RebuildInfo info;
  info.set_rebuild_id(id_);
  info.set_projection(projection_);
  *info.mutable_started_at() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(started_));
  *info.mutable_progress() = Progress();
  *info.mutable_request() = request_;
  return info;
}

uint64_t RebuildJob::WaitForUpdate(uint64_t seen, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  while (seq_ <= seen && !finished_) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return seq_;
}

std::vector<v1::RebuildProgress> RebuildJob::PhaseChanges(size_t from) const {
  absl::MutexLock lock(&mu_);
  if (from >= phase_changes_.size()) return {};
  return {phase_changes_.begin() + from, phase_changes_.end()};
}

void RebuildJob::Absorb(const ReplayStats& batch, absl::Duration took) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  stats_.Add(batch);
  events_total_ = std::max(events_total_, events_->HeadPosition());
  const double seconds = absl::ToDoubleSeconds(took);
  if (seconds > 0 && batch.events_processed > 0) {
    const double instant = batch.events_processed / seconds;
    const double dt = absl::ToDoubleSeconds(now - rate_updated_);
    const double alpha = rate_ == 0 ? 1.0 : 1.0 - std::exp(-dt / kRateTauSeconds);
    rate_ += alpha * (instant - rate_);
    rate_updated_ = now;
  }
  ++seq_;
  cv_.SignalAll();
}

absl::Status RebuildJob::CommitAndPace(storage::ProjectionBatch& rows, uint64_t checkpoint) {
  RETURN_IF_ERROR(rows.Commit(checkpoint));
  runner_->PublishCheckpoint(checkpoint);
  const uint64_t max_rate = request_.max_events_per_second();
  if (max_rate > 0) {
    uint64_t processed;
    {
      absl::MutexLock lock(&mu_);
      processed = stats_.events_processed;
    }
    absl::SleepFor(started_ + absl::Seconds(static_cast<double>(processed) / max_rate) -
                   absl::Now());
  }
  return absl::OkStatus();
}

bool RebuildJob::cancel_requested() const {
  absl::MutexLock lock(&mu_);
  return cancel_requested_;
}

void RebuildJob::Run() {
  spdlog::info("rebuild {} of {} starting (batch size {})", id_, projection_, batch_size_);
  absl::MutexLock writer(&runner_->writer_mutex());
  runner_->SetUnavailable(id_, [this] { return UnavailableReason(); });
  // The store is about to be rewritten under the live thread's cache.
  runner_->ResetCache();
  auto fail = [this](v1::RebuildPhase phase, std::string why) {
    std::string reason = StrCat("projection ", projection_, " needs a rebuild: rebuild ", id_,
                                phase == v1::CANCELLED ? " was cancelled" : " failed",
                                "; run "
                                "RebuildProjection again");
    runner_->SetUnavailable("", [reason] { return reason; });
    Finish(phase, std::move(why));
  };

  SetPhase(v1::TRUNCATING);
  absl::Status truncated = runner_->store()->Truncate(storage::kStateNeedsRebuild);
  if (!truncated.ok()) return fail(v1::FAILED, truncated.ToString());
  uint64_t checkpoint = 0;
  runner_->PublishCheckpoint(0);

  uint64_t target;
  {
    absl::MutexLock lock(&mu_);
    target = events_total_ = events_->HeadPosition();
  }
  SetPhase(v1::REPLAYING);
  // The projection is marked needs_rebuild until the end, so rows are written without the WAL
  // and flushed once before it goes live; the cache spares reads of rows written earlier.
  storage::ProjectionBatchOptions batch_options;
  batch_options.starts_empty = true;
  batch_options.disable_wal = true;
  batch_options.defer_writes = true;
  batch_options.max_cached_rows = 1 << 18;
  storage::ProjectionBatch batch(runner_->store(), batch_options);

  // The bulk of the log, up to the head at the start: scanned and decoded on a second thread
  // while this one applies.
  absl::Status commit_error;
  absl::Time batch_begun = absl::Now();
  ReplayStats total;
  absl::Status replayed =
      PipelinedReplay(*events_, *registry_, runner_->projector(), 0, target, batch_size_, policy_,
                      batch, total, id_, [&](const ReplayStats& b) {
                        Absorb(b, absl::Now() - batch_begun);
                        if (b.last_position > checkpoint) {
                          checkpoint = b.last_position;
                          commit_error = CommitAndPace(batch, checkpoint);
                          if (!commit_error.ok()) return false;
                        }
                        batch_begun = absl::Now();
                        return !cancel_requested();
                      });
  if (!commit_error.ok()) return fail(v1::FAILED, commit_error.ToString());
  if (cancel_requested()) return fail(v1::CANCELLED, "cancelled on request");
  if (!replayed.ok()) return fail(v1::FAILED, std::string(replayed.message()));

  // What arrived meanwhile, batch by batch, until the head is reached.
  SetPhase(v1::CATCHING_UP);
  EventDecoder decoder(registry_);
  while (checkpoint < events_->HeadPosition()) {
    if (cancel_requested()) return fail(v1::CANCELLED, "cancelled on request");
    ReplayStats b;
    const absl::Time begun = absl::Now();
    absl::Status status = ReplayRange(*events_, decoder, runner_->projector(), checkpoint,
                                      batch_size_, policy_, batch, b, id_);
    Absorb(b, absl::Now() - begun);
    if (!status.ok()) return fail(v1::FAILED, std::string(status.message()));
    if (b.last_position > checkpoint) {
      checkpoint = b.last_position;
      absl::Status committed = CommitAndPace(batch, checkpoint);
      if (!committed.ok()) return fail(v1::FAILED, committed.ToString());
    }
  }
  // Every event up to the head is applied and the writer lock keeps the live thread out, so
  // the projection can go live with nothing missed.
  absl::Status live = batch.WriteAll(checkpoint);
  if (live.ok()) live = runner_->store()->Flush();
  if (live.ok()) live = runner_->store()->SetState(storage::kStateLive);
  if (!live.ok()) return fail(v1::FAILED, live.ToString());
  runner_->SetAvailable();
  Finish(v1::DONE, "");
}

RebuildManager::RebuildManager(ProjectionEngine* engine, const storage::EventStore* events,
                               const EventRegistry* registry)
    : engine_(engine), events_(events), registry_(registry) {}

RebuildManager::~RebuildManager() { Shutdown(); }

absl::StatusOr<std::vector<std::shared_ptr<RebuildJob>>> RebuildManager::Start(
    const v1::RebuildProjectionRequest& request) {
  RETURN_IF_ERROR(ValidateRebuildRequest(request));
  std::vector<ProjectionRunner*> runners;
  if (request.projection().empty()) {
    runners = engine_->runners();
  } else {
    ASSIGN_OR_RETURN(ProjectionRunner * runner, engine_->Find(request.projection()));
    runners.push_back(runner);
  }
  absl::MutexLock lock(&mu_);
  if (shut_down_) return absl::UnavailableError("the server is shutting down");
  for (ProjectionRunner* runner : runners) {
    for (const auto& job : jobs_) {
      if (job->projection() == runner->projector().name() && !job->finished()) {
        return absl::FailedPreconditionError(StrCat("projection ", job->projection(),
                                                    " is already being rebuilt by rebuild ",
                                                    job->id(), "; watch or cancel it first"));
      }
    }
  }
  std::vector<std::shared_ptr<RebuildJob>> started;
  for (ProjectionRunner* runner : runners) {
    std::string id = StrCat("rb-", NewId().substr(0, 12));
    v1::RebuildProjectionRequest own = request;
    own.set_projection(std::string(runner->projector().name()));
    auto job = std::make_shared<RebuildJob>(std::move(id), runner, events_, registry_, own);
    jobs_.push_back(job);
    threads_.emplace_back(job, std::thread([job] { job->Run(); }));
    started.push_back(job);
  }
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
  for (const auto& job : jobs_) finished += job->finished() ? 1 : 0;
  for (auto it = jobs_.begin(); it != jobs_.end() && finished > kKeptFinishedJobs;) {
    if ((*it)->finished()) {
      it = jobs_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
  return started;
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
    for (const auto& job : jobs_) job->Cancel();
    threads.swap(threads_);
  }
  for (auto& [job, thread] : threads) thread.join();
}

}  // namespace fidelis::server
