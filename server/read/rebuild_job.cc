#include "server/read/rebuild_job.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "domain/errors.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "google/protobuf/util/time_util.h"
#include "spdlog/spdlog.h"
#include "storage/thread_name.h"

namespace fidelis::server {
namespace {

using google::protobuf::util::TimeUtil;

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

// The options of a rebuild's row cache: rows are cached across batches and written as SST
// files ingested with their checkpoint (when the cache is full, and at durable points and the
// end); the cache spares reads of rows written earlier.
storage::ProjectionBatchOptions RebuildBatchOptions(bool starts_empty) {
  storage::ProjectionBatchOptions options;
  options.starts_empty = starts_empty;
  options.ingest = true;
  options.defer_writes = true;
  options.max_cached_rows = 1 << 18;
  return options;
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
                       const Clock* clock, v1::RebuildProjectionRequest request,
                       const RebuildTuning& tuning, RebuildObserver* observer)
    : id_(std::move(id)),
      engine_(engine),
      target_(std::move(target)),
      mode_(mode),
      resumed_(resumed),
      events_(events),
      registry_(registry),
      clock_(clock),
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
      observer_(observer),
      started_(clock->Now()) {
  absl::MutexLock lock(&mu_);
  events_total_ = events_->HeadPosition();
  if (resumed_) {
    // A resumed job goes on from its shadow's checkpoint.
    stats_.events_processed = stats_.last_position = target_->checkpoint();
  }
  rate_.Record(started_, stats_.events_processed);
  phase_changes_.push_back(ProgressLocked());
}

v1::RebuildProgress RebuildJob::ProgressLocked() const {
  const absl::Time now = clock_->Now();
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
  if (!finished_) {
    p.set_events_per_second(rate_.Rate(now));
    p.set_eta_seconds(rate_.EtaSeconds(now, p.events_total()).value_or(0));
  } else {
    // The whole job's average: the figure a finished job is remembered by.
    const double seconds = absl::ToDoubleSeconds(elapsed_);
    if (seconds > 0) p.set_events_per_second(stats_.events_processed / seconds);
  }
  *p.mutable_elapsed() = ToProto(finished_ ? elapsed_ : now - started_);
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

void RebuildJob::Notify() {
  absl::MutexLock lock(&listeners_mu_);
  for (Listener* listener : listeners_) listener->OnJobUpdate();
}

void RebuildJob::Subscribe(Listener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.push_back(listener);
}

void RebuildJob::Unsubscribe(Listener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

void RebuildJob::SetPhase(v1::RebuildPhase phase) {
  {
    absl::MutexLock lock(&mu_);
    phase_ = phase;
    phase_changes_.push_back(ProgressLocked());
    ++seq_;
    cv_.SignalAll();
  }
  Notify();
}

void RebuildJob::Finish(v1::RebuildPhase phase, std::string failure) {
  absl::Duration elapsed;
  {
    absl::MutexLock lock(&mu_);
    phase_ = phase;
    failure_ = std::move(failure);
    elapsed = elapsed_ = clock_->Now() - started_;
    finished_ = true;
    phase_changes_.push_back(ProgressLocked());
    ++seq_;
    cv_.SignalAll();
  }
  Notify();
  const v1::RebuildProgress last = Progress();
  spdlog::info(
      "rebuild {} of {} ({} {}) {} in {}: {} events processed, {} dispatched, {} skipped, {} "
      "errors{}{} [projection={} rebuild_id={} build={} result={} events={} duration_ms={}]",
      id_, projection_, v1::RebuildMode_Name(mode_), build_, v1::RebuildPhase_Name(phase),
      absl::FormatDuration(absl::Trunc(elapsed, absl::Milliseconds(1))), last.events_processed(),
      last.result().events_dispatched(), last.events_skipped(), last.result().errors_size(),
      last.result().failure().empty() ? "" : ": ", last.result().failure(), projection_, id_,
      build_, v1::RebuildPhase_Name(phase), last.events_processed(),
      absl::ToInt64Milliseconds(elapsed));
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

void RebuildJob::AwaitCancel() const {
  absl::MutexLock lock(&mu_);
  while (!cancel_requested_) cv_.Wait(&mu_);
}

bool RebuildJob::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

bool RebuildJob::AwaitFinished(absl::Duration timeout) const {
  const storage::SteadyTime until = storage::SteadyAfter(timeout);
  absl::MutexLock lock(&mu_);
  while (!finished_ && cv_.WaitUntil(&mu_, until)) {
  }
  return finished_;
}

v1::RebuildProgress RebuildJob::Progress() const {
  absl::MutexLock lock(&mu_);
  return ProgressLocked();
}

uint64_t RebuildJob::update_seq() const {
  absl::MutexLock lock(&mu_);
  return seq_;
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

std::vector<v1::RebuildProgress> RebuildJob::PhaseChanges(size_t from) const {
  absl::MutexLock lock(&mu_);
  if (from >= phase_changes_.size()) return {};
  return {phase_changes_.begin() + static_cast<std::ptrdiff_t>(from), phase_changes_.end()};
}

void RebuildJob::Absorb(const ReplayStats& batch) {
  {
    absl::MutexLock lock(&mu_);
    stats_.Add(batch);
    events_total_ = std::max(events_total_, events_->HeadPosition());
    rate_.Record(clock_->Now(), stats_.events_processed);
    ++seq_;
    cv_.SignalAll();
  }
}

absl::Status RebuildJob::CommitAndPace(BuildWriter& writer, storage::ProjectionBatch& rows,
                                       uint64_t checkpoint) {
  RETURN_IF_ERROR(rows.Commit(checkpoint));
  writer.PublishCheckpoint(checkpoint);
  uint64_t processed;
  {
    absl::MutexLock lock(&mu_);
    processed = stats_.events_processed;
  }
  if (tuning_.max_events_per_second > 0) {
    absl::SleepFor(started_ +
                   absl::Seconds(static_cast<double>(processed) / tuning_.max_events_per_second) -
                   clock_->Now());
  }
  // Commands waiting for the log writer go first; the writer wakes this thread when they are
  // written.
  if (tuning_.yield) events_->WaitUntilNoPendingAppends(tuning_.yield_max);
  return absl::OkStatus();
}

bool RebuildJob::cancel_requested() const {
  absl::MutexLock lock(&mu_);
  return cancel_requested_;
}

void RebuildJob::Observe(v1::RebuildPhase phase) {
  if (observer_ != nullptr) observer_->OnPhase(*this, phase);
}

absl::Status RebuildJob::ReplayInto(BuildWriter& writer, storage::ProjectionBatch& batch,
                                    uint64_t& checkpoint, uint64_t gap,
                                    const std::function<absl::Status()>& durable_point) {
  uint64_t target;
  {
    absl::MutexLock lock(&mu_);
    target = events_total_ = std::max(events_->HeadPosition(), stats_.events_processed);
  }
  SetPhase(v1::REPLAYING);
  Observe(v1::REPLAYING);
  // The bulk of the log, up to the head at the start: scanned and decoded on a second thread
  // while this one applies.
  absl::Status commit_error;
  absl::Time last_durable = clock_->Now();
  ReplayStats total;
  const int nice = tuning_.nice;
  const bool idle = tuning_.idle_priority;
  absl::Status replayed = PipelinedReplay(
      *events_, *registry_, target_->projector(), checkpoint, target, batch_size_, policy_, batch,
      total, id_,
      [&](const ReplayStats& b) {
        Absorb(b);
        if (b.last_position > checkpoint) {
          checkpoint = b.last_position;
          commit_error = CommitAndPace(writer, batch, checkpoint);
          if (commit_error.ok() && durable_point &&
              clock_->Now() - last_durable >= tuning_.durable_interval) {
            commit_error = durable_point();
            last_durable = clock_->Now();
          }
          if (!commit_error.ok()) return false;
        }
        return !cancel_requested();
      },
      [nice, idle] { LowerThreadPriority(nice, idle); });
  RETURN_IF_ERROR(commit_error);
  if (cancel_requested()) return absl::CancelledError("cancelled on request");
  RETURN_IF_ERROR(replayed);

  // What arrived meanwhile, batch by batch, until within `gap` of the head.
  SetPhase(v1::CATCHING_UP);
  Observe(v1::CATCHING_UP);
  EventDecoder decoder(registry_);
  while (checkpoint + gap < events_->HeadPosition()) {
    if (cancel_requested()) return absl::CancelledError("cancelled on request");
    ReplayStats b;
    absl::Status status = ReplayRange(*events_, decoder, target_->projector(), checkpoint,
                                      batch_size_, policy_, batch, b, id_);
    Absorb(b);
    RETURN_IF_ERROR(status);
    if (b.last_position > checkpoint) {
      checkpoint = b.last_position;
      RETURN_IF_ERROR(CommitAndPace(writer, batch, checkpoint));
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
  spdlog::info("rebuild {} of {} in place (batch size {}) [projection={} rebuild_id={}]", id_,
               projection_, batch_size_, projection_, id_);
  BuildWriter writer(*target_);
  writer.MarkUnavailable(id_, [this] { return UnavailableReason(); });
  // The store is about to be rewritten under the tailing thread's cache.
  writer.ResetCache();
  auto fail = [&](v1::RebuildPhase phase, std::string why) {
    std::string reason = StrCat("projection ", projection_, " needs a rebuild: rebuild ", id_,
                                phase == v1::CANCELLED ? " was cancelled" : " failed",
                                "; run RebuildProjection again");
    writer.MarkUnavailable("", [reason] { return reason; });
    Finish(phase, std::move(why));
  };

  SetPhase(v1::TRUNCATING);
  absl::Status truncated = writer.store().Truncate(storage::kStateNeedsRebuild);
  if (!truncated.ok()) return fail(v1::FAILED, truncated.ToString());
  uint64_t checkpoint = 0;
  writer.PublishCheckpoint(0);

  // The projection is marked needs_rebuild until the end.
  storage::ProjectionBatch batch(&writer.store(), RebuildBatchOptions(/*starts_empty=*/true));
  absl::Status replayed = ReplayInto(writer, batch, checkpoint, /*gap=*/0, nullptr);
  if (absl::IsCancelled(replayed)) return fail(v1::CANCELLED, "cancelled on request");
  if (!replayed.ok()) {
    return fail(v1::FAILED, absl::IsFailedPrecondition(replayed) ? std::string(replayed.message())
                                                                 : replayed.ToString());
  }
  // Every event up to the head is applied and the lease keeps the tailing thread out, so the
  // projection can go live with nothing missed.
  absl::Status live = batch.WriteAll(checkpoint);
  if (live.ok()) live = writer.store().SetState(storage::kStateLive);
  if (!live.ok()) return fail(v1::FAILED, live.ToString());
  writer.MarkAvailable();
  Finish(v1::DONE, "");
}

absl::Status RebuildJob::BuildShadow() {
  BuildWriter writer(*target_);
  writer.MarkUnavailable(id_, [this] { return UnavailableReason(); });
  absl::Status built = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::string state, writer.store().State());
    if (state == storage::kStateLive) return absl::OkStatus();  // Resumed after it was done.
    // Replay from the shadow's own checkpoint: 0 for a new one, further for a resumed one.
    uint64_t checkpoint = target_->checkpoint();
    {
      absl::MutexLock lock(&mu_);
      stats_.events_processed = checkpoint;
      stats_.last_position = checkpoint;
    }
    storage::ProjectionBatch batch(&writer.store(), RebuildBatchOptions(checkpoint == 0));
    // Every durable_interval the cached rows are ingested into the shadow as an SST file with
    // their checkpoint: the point a resumed job starts from.
    auto durable_point = [&]() { return batch.WriteAll(checkpoint); };
    RETURN_IF_ERROR(ReplayInto(writer, batch, checkpoint, batch_size_, durable_point));
    RETURN_IF_ERROR(durable_point());
    // The shadow follows new events on its own from here, with the WAL.
    RETURN_IF_ERROR(writer.store().SetState(storage::kStateLive));
    writer.ResetCache();
    return absl::OkStatus();
  }();
  if (built.ok()) {
    writer.MarkAvailable();
  } else {
    writer.MarkUnavailable("", [] { return std::string("a shadow whose rebuild stopped"); });
  }
  return built;
}

void RebuildJob::RunBlueGreen() {
  spdlog::info(
      "rebuild {} of {}: blue-green into {}{} (batch size {}) [projection={} rebuild_id={} "
      "build={}]",
      id_, projection_, build_, resumed_ ? ", resumed" : "", batch_size_, projection_, id_, build_);
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
  if (absl::Status built = BuildShadow(); !built.ok()) {
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
  Observe(v1::PROMOTING);
  if (cancel_requested()) return end(v1::CANCELLED, "cancelled on request");
  absl::Status promoted = engine_->Promote(projection_);
  if (!promoted.ok()) return end(v1::FAILED, promoted.ToString());
  end(v1::DONE, "");
}

}  // namespace fidelis::server
