#include "server/read/projection_runner.h"

#include <algorithm>

#include "domain/status_macros.h"
#include "domain/strings.h"
#include "server/read/replay.h"
#include "spdlog/spdlog.h"
#include "storage/thread_name.h"

namespace fidelis::server {
namespace {

// The live runners cache the rows live traffic touches; a bounded hot set.
storage::ProjectionBatchOptions LiveBatchOptions() {
  storage::ProjectionBatchOptions options;
  options.max_cached_rows = 16384;
  return options;
}

}  // namespace

ProjectionRunner::ProjectionRunner(const Projector* projector,
                                   std::unique_ptr<storage::ProjectionStore> store,
                                   const storage::EventStore* events, const EventRegistry* registry,
                                   const Clock* clock, ProjectionEngineOptions options)
    : projector_(projector),
      store_(std::move(store)),
      events_(events),
      clock_(clock),
      options_(std::move(options)),
      label_(StrCat(projector->name(), " ", store_->build().ToString())),
      decoder_(registry),
      live_batch_(store_.get(), LiveBatchOptions()) {}

ProjectionRunner::~ProjectionRunner() { Stop(); }

absl::Status ProjectionRunner::Start() {
  ASSIGN_OR_RETURN(uint64_t checkpoint, store_->Checkpoint());
  ASSIGN_OR_RETURN(std::string state, store_->State());
  checkpoint_.store(checkpoint);
  if (state == storage::kStateBuilding) {
    std::string reason = StrCat("projection ", label_, " is a shadow still being built");
    SetUnavailable("", [reason] { return reason; });
  } else if (state != storage::kStateLive) {
    std::string reason = StrCat("projection ", label_,
                                " needs a rebuild (an earlier rebuild did not finish); run "
                                "RebuildProjection");
    SetUnavailable("", [reason] { return reason; });
  } else if (const uint64_t head = events_->HeadPosition(); checkpoint > head) {
    if (events_->shared()) {
      // A cluster node's replica is a copy of the log of record, not synced by default: after
      // a machine crash it can end before what the projections applied, and re-reads the rest
      // from the stream. Judged once it has caught up (Run).
      awaiting_replica_ = true;
      std::string reason = StrCat(
          "projection ", label_, " has applied the event log up to position ", checkpoint,
          "; this node's replica holds up to ", head, " and is catching up with the log of record");
      spdlog::warn("{}", reason);
      SetUnavailable("", [reason] { return reason; });
    } else {
      SetBeyondLog(checkpoint, head);
    }
  }
  spdlog::info("projection {} starts at checkpoint {} ({})", label_, checkpoint, state);
  thread_ = std::thread([this] {
    storage::NameThisThread(StrCat("proj ", label_));
    Run();
  });
  return absl::OkStatus();
}

void ProjectionRunner::SetBeyondLog(uint64_t checkpoint, uint64_t head) {
  // Projections live in a RocksDB instance of their own: after a machine crash with
  // --sync_writes=false, or a log restored from an older copy, they can hold events the log
  // no longer has. Going on would skip the events that take those positions next.
  std::string reason =
      StrCat("projection ", label_, " has applied the event log up to position ", checkpoint,
             " but the log ends at ", head,
             " (it lost events it had not synced, or was restored from an older copy); run "
             "RebuildProjection");
  spdlog::error("{}", reason);
  SetUnavailable("", [reason] { return reason; });
}

void ProjectionRunner::Stop() {
  {
    absl::MutexLock lock(&state_mu_);
    stopping_.store(true);
    pause_cv_.Signal();
  }
  if (thread_.joinable()) thread_.join();
}

void ProjectionRunner::SetLeader(std::shared_ptr<const ProjectionRunner> leader) {
  absl::MutexLock lock(&state_mu_);
  leader_ = std::move(leader);
}

void ProjectionRunner::Run() {
  while (!stopping_.load()) {
    if (awaiting_replica_) {
      // Start found the checkpoint beyond the replica's head. Once the replica holds what the
      // log of record held, the checkpoint is within it, or the log of record lost events.
      if (!events_->WaitUntilReady(absl::Milliseconds(200))) continue;
      awaiting_replica_ = false;
      BuildWriter writer(*this);
      if (!rebuild_id().empty()) continue;  // A rebuild has taken the build over.
      const uint64_t checkpoint = checkpoint_.load(std::memory_order_acquire);
      const uint64_t head = events_->HeadPosition();
      if (checkpoint > head) {
        SetBeyondLog(checkpoint, head);
      } else {
        spdlog::info("projection {}: the replica has caught up past its checkpoint {}", label_,
                     checkpoint);
        writer.MarkAvailable();
      }
      continue;
    }
    const uint64_t checkpoint = checkpoint_.load(std::memory_order_acquire);
    // A projection that needs a rebuild is not advanced: that would hide the gap.
    if (!Availability().ok()) {
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    std::shared_ptr<const ProjectionRunner> leader;
    {
      absl::MutexLock lock(&state_mu_);
      leader = leader_;
    }
    const uint64_t head = events_->HeadPosition();
    const uint64_t limit = leader ? std::min(head, leader->checkpoint()) : head;
    if (limit <= checkpoint) {
      if (leader && head > checkpoint) {
        leader->Await(checkpoint + 1, clock_->Now() + absl::Milliseconds(100), /*hurry=*/false)
            .IgnoreError();
        absl::SleepFor(absl::Milliseconds(1));
      } else {
        events_->WaitForHead(checkpoint, absl::Milliseconds(200));
      }
      continue;
    }
    uint64_t applied = 0;
    absl::Status status;
    {
      BuildWriter writer(*this);
      // A rebuild may have run while this thread waited for the lease.
      if (!Availability().ok()) continue;
      const uint64_t from = checkpoint_.load(std::memory_order_acquire);
      if (from >= limit) continue;
      status = writer.AdvanceTo(std::min<uint64_t>(limit, from + options_.batch_size));
      applied = checkpoint_.load(std::memory_order_acquire) - from;
      if (!status.ok()) {
        spdlog::error("projection {} stopped at checkpoint {}: {}", label_, from,
                      status.ToString());
      }
    }
    if (!status.ok()) {
      absl::SleepFor(absl::Seconds(1));
    } else if (applied < options_.batch_size) {
      PauseAfterBatch();  // A short batch: this build has reached the head.
    }
  }
}

void ProjectionRunner::PauseAfterBatch() {
  if (options_.tail_interval <= absl::ZeroDuration()) return;
  const storage::SteadyTime until = storage::SteadyAfter(options_.tail_interval);
  absl::MutexLock lock(&state_mu_);
  while (hurrying_ == 0 && waiters_.empty() && !stopping_.load() &&
         pause_cv_.WaitUntil(&state_mu_, until)) {
  }
}

void ProjectionRunner::PublishCheckpoint(uint64_t position) {
  std::vector<AppliedCallback> ready;
  {
    absl::MutexLock lock(&state_mu_);
    const uint64_t before = checkpoint_.load(std::memory_order_relaxed);
    if (position > before) events_applied_.fetch_add(position - before, std::memory_order_relaxed);
    checkpoint_.store(position, std::memory_order_release);
    checkpoint_cv_.SignalAll();
    while (!waiters_.empty() && waiters_.begin()->first <= position) {
      ready.push_back(std::move(waiters_.begin()->second.done));
      waiters_.erase(waiters_.begin());
    }
  }
  for (AppliedCallback& done : ready) std::move(done)(absl::OkStatus());
}

void ProjectionRunner::SetUnavailable(std::string rebuild_id, std::function<std::string()> reason) {
  std::vector<AppliedCallback> failed;
  absl::Status why;
  {
    absl::MutexLock lock(&state_mu_);
    unavailable_ = std::move(reason);
    rebuild_id_ = std::move(rebuild_id);
    checkpoint_cv_.SignalAll();
    why = absl::UnavailableError(unavailable_());
    for (auto& [position, waiter] : waiters_) failed.push_back(std::move(waiter.done));
    waiters_.clear();
  }
  for (AppliedCallback& done : failed) std::move(done)(why);
}

uint64_t ProjectionRunner::WhenApplied(uint64_t position, AppliedCallback done) const {
  absl::Status now;
  {
    absl::MutexLock lock(&state_mu_);
    if (unavailable_) {
      now = absl::UnavailableError(unavailable_());
    } else if (checkpoint_.load(std::memory_order_acquire) < position) {
      const uint64_t id = next_waiter_++;
      waiters_.emplace(position, Waiter{id, std::move(done)});
      pause_cv_.Signal();  // The tailing thread need not finish its pause.
      return id;
    }
  }
  std::move(done)(std::move(now));
  return 0;
}

bool ProjectionRunner::CancelWaiter(uint64_t id) const {
  absl::MutexLock lock(&state_mu_);
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (it->second.id == id) {
      waiters_.erase(it);
      return true;
    }
  }
  return false;
}

void ProjectionRunner::SetAvailable() {
  absl::MutexLock lock(&state_mu_);
  unavailable_ = nullptr;
  rebuild_id_.clear();
  checkpoint_cv_.SignalAll();
}

std::string ProjectionRunner::rebuild_id() const {
  absl::MutexLock lock(&state_mu_);
  return rebuild_id_;
}

absl::Status ProjectionRunner::Availability() const {
  absl::MutexLock lock(&state_mu_);
  if (!unavailable_) return absl::OkStatus();
  return absl::UnavailableError(unavailable_());
}

absl::Status ProjectionRunner::WaitFor(uint64_t position, absl::Time deadline) const {
  return Await(position, deadline, /*hurry=*/true);
}

absl::Status ProjectionRunner::Await(uint64_t position, absl::Time deadline, bool hurry) const {
  const storage::SteadyTime until = storage::SteadyDeadline(deadline, clock_->Now());
  absl::MutexLock lock(&state_mu_);
  auto wait = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_) -> absl::Status {
    while (checkpoint_.load(std::memory_order_acquire) < position) {
      if (unavailable_) return absl::UnavailableError(unavailable_());
      if (!checkpoint_cv_.WaitUntil(&state_mu_, until) &&
          checkpoint_.load(std::memory_order_acquire) < position) {
        return absl::DeadlineExceededError(
            StrCat("projection ", label_, " has applied up to global position ", checkpoint_.load(),
                   ", not yet ", position, ", by the call's deadline"));
      }
    }
    if (unavailable_) return absl::UnavailableError(unavailable_());
    return absl::OkStatus();
  };
  // Only a caller that will wait counts; one that returns at once has nothing to hurry.
  const bool hurrying = hurry && checkpoint_.load(std::memory_order_acquire) < position;
  if (hurrying) {
    ++hurrying_;
    pause_cv_.Signal();
  }
  absl::Status status = wait();
  if (hurrying) --hurrying_;
  return status;
}

// The lock is held from here to the destructor, which the analysis cannot follow across
// functions; every method asserts it instead.
BuildWriter::BuildWriter(ProjectionRunner& runner) ABSL_NO_THREAD_SAFETY_ANALYSIS
    : runner_(runner) {
  runner.writer_mu_.Lock();
}

BuildWriter::~BuildWriter() ABSL_NO_THREAD_SAFETY_ANALYSIS { runner_.writer_mu_.Unlock(); }

BuildWriterPair::BuildWriterPair(ProjectionRunner& a, ProjectionRunner& b) : a_runner_(a) {
  const bool a_first = std::less<const ProjectionRunner*>()(&a, &b);
  first_ = std::make_unique<BuildWriter>(a_first ? a : b);
  second_ = std::make_unique<BuildWriter>(a_first ? b : a);
}

absl::Status BuildWriter::AdvanceTo(uint64_t position) {
  runner_.writer_mu_.AssertHeld();
  ReplayPolicy policy;  // A live build skips what it cannot apply, with a log line.
  position = std::min(position, runner_.events_->HeadPosition());
  while (runner_.checkpoint() < position) {
    const uint64_t from = runner_.checkpoint();
    ReplayStats stats;
    absl::Status status =
        ReplayRange(*runner_.events_, runner_.decoder_, *runner_.projector_, from,
                    std::min<uint64_t>(runner_.options_.batch_size, position - from), policy,
                    runner_.live_batch_, stats, runner_.label_);
    if (status.ok() && stats.last_position > from) {
      status = runner_.live_batch_.Commit(stats.last_position);
    }
    if (!status.ok()) {
      runner_.live_batch_.Discard();
      return status;
    }
    if (stats.last_position <= from) break;
    runner_.PublishCheckpoint(stats.last_position);
  }
  return absl::OkStatus();
}

void BuildWriter::MarkUnavailable(std::string rebuild_id, std::function<std::string()> reason) {
  runner_.SetUnavailable(std::move(rebuild_id), std::move(reason));
}

void BuildWriter::MarkAvailable() { runner_.SetAvailable(); }

void BuildWriter::PublishCheckpoint(uint64_t position) { runner_.PublishCheckpoint(position); }

void BuildWriter::ResetCache() {
  runner_.writer_mu_.AssertHeld();
  runner_.live_batch_.Discard();
}

}  // namespace fidelis::server
