#include "server/rebuild.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmath>

#include "absl/time/clock.h"
#include "domain/errors.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "google/protobuf/util/time_util.h"
#include "server/command_handler.h"
#include "spdlog/spdlog.h"
#include "storage/thread_name.h"

namespace fidelis::server {
namespace {

using google::protobuf::util::TimeUtil;

// Finished jobs kept for GetRebuild and ListRebuilds.
constexpr size_t kKeptFinishedJobs = 100;
// Time constant of the events-per-second smoothing.
constexpr double kRateTauSeconds = 2.0;

bool Terminal(v1::RebuildPhase phase) {
  return phase == v1::DONE || phase == v1::FAILED || phase == v1::CANCELLED || phase == v1::READY;
}

google::protobuf::Duration ToProto(absl::Duration d) {
  return TimeUtil::MicrosecondsToDuration(absl::ToInt64Microseconds(d));
}

// Lowers the calling thread's priority (Linux: nice and the scheduling policy are per thread).
// SCHED_IDLE runs the thread only on a core nothing else wants, and any other thread that
// wakes up takes the core from it at once, where a nice thread may keep it for a while.
void LowerThreadPriority(int nice, bool idle) {
  if (nice > 0 && setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice) != 0) {
    spdlog::warn("could not lower a rebuild thread's priority to nice {}", nice);
  }
  sched_param param{};
  if (idle && sched_setscheduler(0, SCHED_IDLE, &param) != 0) {
    spdlog::warn("could not move a rebuild thread to SCHED_IDLE");
  }
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
  if (!v1::RebuildMode_IsValid(request.mode())) {
    return InvalidField("mode", "must be IN_PLACE or BLUE_GREEN");
  }
  if (request.nice() > 19) {
    return InvalidField("nice", StrCat("must be between 0 and 19, got ", request.nice()));
  }
  if (request.no_promote() && request.mode() == v1::IN_PLACE) {
    return InvalidField("no_promote", "applies to BLUE_GREEN rebuilds only");
  }
  return absl::OkStatus();
}

RebuildJob::RebuildJob(std::string id, ProjectionEngine* engine,
                       std::shared_ptr<ProjectionRunner> target, v1::RebuildMode mode, bool resumed,
                       const storage::EventStore* events, const EventRegistry* registry,
                       v1::RebuildProjectionRequest request, const RebuildTuning& tuning)
    : id_(std::move(id)),
      engine_(engine),
      target_(std::move(target)),
      mode_(mode),
      resumed_(resumed),
      events_(events),
      registry_(registry),
      request_(std::move(request)),
      projection_(target_->projector().name()),
      build_(target_->build().ToString()),
      categories_(target_->projector().categories().size()),
      batch_size_(request_.batch_size() == 0 ? kDefaultRebuildBatchSize : request_.batch_size()),
      policy_(PolicyOf(request_)),
      tuning_([&] {
        RebuildTuning t = tuning;
        if (request_.nice() > 0) t.nice = static_cast<int>(request_.nice());
        if (request_.max_events_per_second() > 0) {
          t.max_events_per_second = request_.max_events_per_second();
        }
        if (request_.no_yield()) t.yield = false;
        if (request_.no_idle_priority()) t.idle_priority = false;
        return t;
      }()),
      started_(absl::Now()) {
  absl::MutexLock lock(&mu_);
  rate_updated_ = started_;
  events_total_ = events_->HeadPosition();
  if (resumed_) {
    // A resumed job goes on from its shadow's checkpoint.
    stats_.events_processed = stats_.last_position = target_->checkpoint();
  }
  phase_changes_.push_back(ProgressLocked());
}

v1::RebuildProgress RebuildJob::ProgressLocked() const {
  v1::RebuildProgress p;
  p.set_rebuild_id(id_);
  p.set_projection(projection_);
  p.set_build(build_);
  p.set_mode(mode_);
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
    r->set_categories_processed(categories_);
    r->set_events_dispatched(stats_.events_dispatched);
    r->set_events_skipped(stats_.events_skipped);
    r->set_events_processed(stats_.events_processed);
    for (const ReplayError& e : stats_.errors) {
      v1::RebuildError* error = r->add_errors();
      error->set_global_position(e.global_position);
      error->set_event_type(e.event_type);
      error->set_message(e.message);
    }
    r->set_success((phase_ == v1::DONE || phase_ == v1::READY) && stats_.errors.empty());
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
  return StrCat("projection ", projection_, " ", build_, " is being rebuilt by rebuild ", id_, " (",
                v1::RebuildPhase_Name(phase_), ", ", stats_.events_processed, " of ",
                std::max(events_total_, stats_.events_processed), " events); retry later");
}

void RebuildJob::Cancel(bool for_shutdown) {
  absl::MutexLock lock(&mu_);
  if (!cancel_requested_) for_shutdown_ = for_shutdown;
  cancel_requested_ = true;
  cv_.SignalAll();
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
  info.set_resumed(resumed_);
  return info;
}

uint64_t RebuildJob::WaitForUpdate(uint64_t seen, absl::Time deadline) const {
  const storage::SteadyTime until = storage::SteadyDeadline(deadline);
  absl::MutexLock lock(&mu_);
  while (seq_ <= seen && !finished_) {
    if (!cv_.WaitUntil(&mu_, until)) break;
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
  target_->PublishCheckpoint(checkpoint);
  uint64_t processed;
  absl::Time started;
  {
    absl::MutexLock lock(&mu_);
    processed = stats_.events_processed;
    started = started_;
  }
  if (tuning_.max_events_per_second > 0) {
    absl::SleepFor(started +
                   absl::Seconds(static_cast<double>(processed) / tuning_.max_events_per_second) -
                   absl::Now());
  }
  if (tuning_.yield) {
    // Commands waiting for the log writer go first.
    const absl::Time until = absl::Now() + tuning_.yield_max;
    while (events_->PendingAppends() > 0 && absl::Now() < until) {
      absl::SleepFor(absl::Microseconds(200));
    }
  }
  return absl::OkStatus();
}

bool RebuildJob::cancel_requested() const {
  absl::MutexLock lock(&mu_);
  return cancel_requested_;
}

void RebuildJob::MaybePause(v1::RebuildPhase phase) {
  if (tuning_.pause_at != v1::RebuildPhase_Name(phase)) return;
  spdlog::warn("rebuild {} of {} paused at {} (test hook)", id_, projection_, tuning_.pause_at);
  absl::MutexLock lock(&mu_);
  while (!cancel_requested_) cv_.Wait(&mu_);
}

absl::Status RebuildJob::ReplayInto(storage::ProjectionBatch& batch, uint64_t& checkpoint,
                                    uint64_t gap,
                                    const std::function<absl::Status()>& durable_point) {
  uint64_t target;
  {
    absl::MutexLock lock(&mu_);
    target = events_total_ = std::max(events_->HeadPosition(), stats_.events_processed);
  }
  SetPhase(v1::REPLAYING);
  MaybePause(v1::REPLAYING);
  // The bulk of the log, up to the head at the start: scanned and decoded on a second thread
  // while this one applies.
  absl::Status commit_error;
  absl::Time batch_begun = absl::Now();
  absl::Time last_durable = absl::Now();
  ReplayStats total;
  const int nice = tuning_.nice;
  const bool idle = tuning_.idle_priority;
  absl::Status replayed = PipelinedReplay(
      *events_, *registry_, target_->projector(), checkpoint, target, batch_size_, policy_, batch,
      total, id_,
      [&](const ReplayStats& b) {
        Absorb(b, absl::Now() - batch_begun);
        if (b.last_position > checkpoint) {
          checkpoint = b.last_position;
          commit_error = CommitAndPace(batch, checkpoint);
          if (commit_error.ok() && durable_point &&
              absl::Now() - last_durable >= tuning_.durable_interval) {
            commit_error = durable_point();
            last_durable = absl::Now();
          }
          if (!commit_error.ok()) return false;
        }
        batch_begun = absl::Now();
        return !cancel_requested();
      },
      [nice, idle] { LowerThreadPriority(nice, idle); });
  RETURN_IF_ERROR(commit_error);
  if (cancel_requested()) return absl::CancelledError("cancelled on request");
  RETURN_IF_ERROR(replayed);

  // What arrived meanwhile, batch by batch, until within `gap` of the head.
  SetPhase(v1::CATCHING_UP);
  MaybePause(v1::CATCHING_UP);
  EventDecoder decoder(registry_);
  while (checkpoint + gap < events_->HeadPosition()) {
    if (cancel_requested()) return absl::CancelledError("cancelled on request");
    ReplayStats b;
    const absl::Time begun = absl::Now();
    absl::Status status = ReplayRange(*events_, decoder, target_->projector(), checkpoint,
                                      batch_size_, policy_, batch, b, id_);
    Absorb(b, absl::Now() - begun);
    RETURN_IF_ERROR(status);
    if (b.last_position > checkpoint) {
      checkpoint = b.last_position;
      RETURN_IF_ERROR(CommitAndPace(batch, checkpoint));
    }
  }
  if (cancel_requested()) return absl::CancelledError("cancelled on request");
  return absl::OkStatus();
}

void RebuildJob::Run() {
  LowerThreadPriority(tuning_.nice, tuning_.idle_priority);
  if (mode_ == v1::BLUE_GREEN) {
    RunBlueGreen();
  } else {
    RunInPlace();
  }
}

void RebuildJob::RunInPlace() {
  spdlog::info("rebuild {} of {} in place (batch size {})", id_, projection_, batch_size_);
  absl::MutexLock writer(&target_->writer_mutex());
  target_->SetUnavailable(id_, [this] { return UnavailableReason(); });
  // The store is about to be rewritten under the live thread's cache.
  target_->ResetCache();
  auto fail = [this](v1::RebuildPhase phase, std::string why) {
    std::string reason = StrCat("projection ", projection_, " needs a rebuild: rebuild ", id_,
                                phase == v1::CANCELLED ? " was cancelled" : " failed",
                                "; run RebuildProjection again");
    target_->SetUnavailable("", [reason] { return reason; });
    Finish(phase, std::move(why));
  };

  SetPhase(v1::TRUNCATING);
  absl::Status truncated = target_->store()->Truncate(storage::kStateNeedsRebuild);
  if (!truncated.ok()) return fail(v1::FAILED, truncated.ToString());
  uint64_t checkpoint = 0;
  target_->PublishCheckpoint(0);

  // The projection is marked needs_rebuild until the end. Rows are cached across batches and
  // written as SST files ingested with their checkpoint (when the cache is full, and at the
  // end); the cache spares reads of rows written earlier.
  storage::ProjectionBatchOptions batch_options;
  batch_options.starts_empty = true;
  batch_options.ingest = true;
  batch_options.defer_writes = true;
  batch_options.max_cached_rows = 1 << 18;
  storage::ProjectionBatch batch(target_->store(), batch_options);
  absl::Status replayed = ReplayInto(batch, checkpoint, /*gap=*/0, nullptr);
  if (absl::IsCancelled(replayed)) return fail(v1::CANCELLED, "cancelled on request");
  if (!replayed.ok()) {
    return fail(v1::FAILED, absl::IsFailedPrecondition(replayed) ? std::string(replayed.message())
                                                                 : replayed.ToString());
  }
  // Every event up to the head is applied and the writer lock keeps the live thread out, so
  // the projection can go live with nothing missed.
  absl::Status live = batch.WriteAll(checkpoint);
  if (live.ok()) live = target_->store()->SetState(storage::kStateLive);
  if (!live.ok()) return fail(v1::FAILED, live.ToString());
  target_->SetAvailable();
  Finish(v1::DONE, "");
}

void RebuildJob::RunBlueGreen() {
  spdlog::info("rebuild {} of {}: blue-green into {}{} (batch size {})", id_, projection_, build_,
               resumed_ ? ", resumed" : "", batch_size_);
  auto end = [this](v1::RebuildPhase phase, std::string why) {
    bool for_shutdown;
    {
      absl::MutexLock lock(&mu_);
      for_shutdown = for_shutdown_;
    }
    target_.reset();  // The engine waits for every holder before dropping the build.
    if (phase == v1::CANCELLED && for_shutdown) {
      why = "the server stopped; the rebuild resumes from its shadow at the next start";
    } else if (phase != v1::DONE && phase != v1::READY) {
      absl::Status dropped = engine_->DropShadow(projection_);
      if (!dropped.ok()) spdlog::warn("rebuild {}: {}", id_, dropped.ToString());
    }
    Finish(phase, std::move(why));
  };
  // Replays into the shadow under its writer lock; returns what went wrong, if anything.
  auto build = [this]() -> absl::Status {
    absl::MutexLock writer(&target_->writer_mutex());
    target_->SetUnavailable(id_, [this] { return UnavailableReason(); });
    ASSIGN_OR_RETURN(std::string state, target_->store()->State());
    if (state != storage::kStateLive) {
      // Replay from the shadow's own checkpoint: 0 for a new one, further for a resumed one.
      uint64_t checkpoint = target_->checkpoint();
      {
        absl::MutexLock lock(&mu_);
        stats_.events_processed = checkpoint;
        stats_.last_position = checkpoint;
      }
      storage::ProjectionBatchOptions batch_options;
      batch_options.starts_empty = checkpoint == 0;
      batch_options.ingest = true;
      batch_options.defer_writes = true;
      batch_options.max_cached_rows = 1 << 18;
      storage::ProjectionBatch batch(target_->store(), batch_options);
      // Rows are cached; every few seconds they are ingested into the shadow as an SST file
      // with their checkpoint, the point a resumed job starts from.
      auto durable_point = [&]() { return batch.WriteAll(checkpoint); };
      RETURN_IF_ERROR(ReplayInto(batch, checkpoint, batch_size_, durable_point));
      RETURN_IF_ERROR(durable_point());
      // The shadow follows new events on its own from here, with the WAL.
      RETURN_IF_ERROR(target_->store()->SetState(storage::kStateLive));
      target_->ResetCache();
    }
    target_->SetAvailable();
    return absl::OkStatus();
  };
  if (absl::Status built = build(); !built.ok()) {
    target_->SetUnavailable("", [] { return std::string("a shadow whose rebuild stopped"); });
    if (absl::IsCancelled(built)) return end(v1::CANCELLED, "cancelled on request");
    return end(v1::FAILED,
               absl::IsFailedPrecondition(built) ? std::string(built.message()) : built.ToString());
  }
  if (request_.no_promote()) {
    spdlog::info(
        "rebuild {}: shadow {} of {} is ready; it follows new events until promoted or "
        "aborted",
        id_, build_, projection_);
    return end(v1::READY, "");
  }
  SetPhase(v1::PROMOTING);
  MaybePause(v1::PROMOTING);
  if (cancel_requested()) return end(v1::CANCELLED, "cancelled on request");
  absl::Status promoted = engine_->Promote(projection_);
  if (!promoted.ok()) return end(v1::FAILED, promoted.ToString());
  end(v1::DONE, "");
}

RebuildManager::RebuildManager(ProjectionEngine* engine, const storage::EventStore* events,
                               const EventRegistry* registry, RebuildTuning tuning)
    : engine_(engine), events_(events), registry_(registry), tuning_(std::move(tuning)) {}

RebuildManager::~RebuildManager() { Shutdown(); }

std::shared_ptr<RebuildJob> RebuildManager::RunningFor(std::string_view projection) const {
  for (const auto& job : jobs_) {
    if (job->projection() == projection && !job->finished()) return job;
  }
  return nullptr;
}

void RebuildManager::Launch(std::shared_ptr<RebuildJob> job) {
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
    auto job = std::make_shared<RebuildJob>(std::move(id), engine_, std::move(target), modes[i],
                                            /*resumed=*/false, events_, registry_, own, tuning_);
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
    Launch(std::make_shared<RebuildJob>(resumable.rebuild_id, engine_, std::move(resumable.shadow),
                                        v1::BLUE_GREEN, /*resumed=*/true, events_, registry_,
                                        request, tuning_));
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
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    for (uint64_t seen = 0; !job->finished() && absl::Now() < deadline;) {
      seen = job->WaitForUpdate(seen, deadline);
    }
    if (!job->finished()) {
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
