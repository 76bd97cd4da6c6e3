#include "server/projection_engine.h"

#include "absl/time/clock.h"
#include "domain/errors.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "server/replay.h"
#include "spdlog/spdlog.h"

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
                                   ProjectionEngineOptions options)
    : projector_(projector),
      store_(std::move(store)),
      events_(events),
      registry_(registry),
      options_(options),
      label_(StrCat(projector->name(), " v", projector->version())),
      decoder_(registry),
      live_batch_(store_.get(), LiveBatchOptions()) {}

ProjectionRunner::~ProjectionRunner() { Stop(); }

absl::Status ProjectionRunner::Start() {
  ASSIGN_OR_RETURN(uint64_t checkpoint, store_->Checkpoint());
  ASSIGN_OR_RETURN(std::string state, store_->State());
  checkpoint_.store(checkpoint);
  if (state != storage::kStateLive) {
    std::string reason = StrCat("projection ", label_,
                                " needs a rebuild (an earlier rebuild did not finish); run "
                                "RebuildProjection");
    SetUnavailable("", [reason] { return reason; });
  }
  spdlog::info("projection {} starts at checkpoint {} ({})", label_, checkpoint, state);
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void ProjectionRunner::Stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ProjectionRunner::Run() {
  ReplayPolicy policy;  // Live projections skip what they cannot apply, with a log line.
  while (!stopping_.load()) {
    const uint64_t checkpoint = checkpoint_.load(std::memory_order_acquire);
    // A projection that needs a rebuild is not advanced: that would hide the gap.
    if (!Availability().ok()) {
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    if (events_->HeadPosition() <= checkpoint) {
      events_->WaitForHead(checkpoint, absl::Now() + absl::Milliseconds(200));
      continue;
    }
    writer_mu_.Lock();
    // A rebuild may have run while this thread waited for the lock.
    if (!Availability().ok()) {
      writer_mu_.Unlock();
      continue;
    }
    const uint64_t from = checkpoint_.load(std::memory_order_acquire);
    ReplayStats stats;
    absl::Status status = ReplayRange(*events_, decoder_, *projector_, from, options_.batch_size,
                                      policy, live_batch_, stats, label_);
    if (status.ok() && stats.last_position > from) {
      status = live_batch_.Commit(stats.last_position);
    } else if (!status.ok()) {
      live_batch_.Discard();
    }
    if (status.ok() && stats.last_position > from) PublishCheckpoint(stats.last_position);
    writer_mu_.Unlock();
    if (!status.ok()) {
      spdlog::error("projection {} stopped at checkpoint {}: {}", label_, from, status.ToString());
      absl::SleepFor(absl::Seconds(1));
    }
  }
}

void ProjectionRunner::PublishCheckpoint(uint64_t position) {
  absl::MutexLock lock(&state_mu_);
  checkpoint_.store(position, std::memory_order_release);
  checkpoint_cv_.SignalAll();
}

void ProjectionRunner::SetUnavailable(std::string rebuild_id, std::function<std::string()> reason) {
  absl::MutexLock lock(&state_mu_);
  unavailable_ = std::move(reason);
  rebuild_id_ = std::move(rebuild_id);
  checkpoint_cv_.SignalAll();
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
  absl::MutexLock lock(&state_mu_);
  while (checkpoint_.load(std::memory_order_acquire) < position) {
    if (unavailable_) return absl::UnavailableError(unavailable_());
    if (checkpoint_cv_.WaitWithDeadline(&state_mu_, deadline) &&
        checkpoint_.load(std::memory_order_acquire) < position) {
      return absl::DeadlineExceededError(
          StrCat("projection ", label_, " has applied up to global position ", checkpoint_.load(),
                 ", not yet ", position, ", by the call's deadline"));
    }
  }
  if (unavailable_) return absl::UnavailableError(unavailable_());
  return absl::OkStatus();
}

ProjectionEngine::ProjectionEngine(storage::Database* database, const storage::EventStore* events,
                                   const EventRegistry* registry, ProjectionEngineOptions options)
    : database_(database), events_(events), registry_(registry), options_(options) {}

ProjectionEngine::~ProjectionEngine() { Stop(); }

absl::Status ProjectionEngine::Start(const std::vector<const Projector*>& projectors) {
  for (const Projector* projector : projectors) {
    ASSIGN_OR_RETURN(std::unique_ptr<storage::ProjectionStore> store,
                     storage::ProjectionStore::Open(database_, std::string(projector->name()),
                                                    projector->version()));
    auto runner = std::make_unique<ProjectionRunner>(projector, std::move(store), events_,
                                                     registry_, options_);
    RETURN_IF_ERROR(runner->Start());
    runners_.emplace(std::string(projector->name()), std::move(runner));
  }
  return absl::OkStatus();
}

void ProjectionEngine::Stop() {
  for (auto& [name, runner] : runners_) runner->Stop();
}

absl::StatusOr<ProjectionRunner*> ProjectionEngine::Find(std::string_view name) const {
  auto it = runners_.find(name);
  if (it == runners_.end()) {
    std::string known;
    for (const auto& [n, r] : runners_) known += (known.empty() ? "" : ", ") + n;
    return absl::NotFoundError(
        StrCat("unknown projection '", name.substr(0, 64), "'; known: ", known));
  }
  return it->second.get();
}

absl::StatusOr<ProjectionRunner*> ProjectionEngine::Readable(std::string_view name,
                                                             uint32_t version,
                                                             uint64_t min_position,
                                                             absl::Time deadline) const {
  ASSIGN_OR_RETURN(ProjectionRunner * runner, Find(name));
  if (version != 0 && version != runner->projector().version()) {
    return InvalidField("projection_version",
                        StrCat(name, " v", version, " is not served; the live version is ",
                               runner->projector().version()));
  }
  const uint64_t head = events_->HeadPosition();
  if (min_position > head) {
    return InvalidField("min_global_position",
                        StrCat(min_position, " is beyond the head of the log (", head, ")"));
  }
  RETURN_IF_ERROR(runner->Availability());
  if (min_position > 0) RETURN_IF_ERROR(runner->WaitFor(min_position, deadline));
  return runner;
}

std::vector<ProjectionRunner*> ProjectionEngine::runners() const {
  std::vector<ProjectionRunner*> out;
  for (const auto& [name, runner] : runners_) out.push_back(runner.get());
  return out;
}

}  // namespace fidelis::server
