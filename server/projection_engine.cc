#include "server/projection_engine.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "domain/errors.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/replay.h"
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

// Holds the writer locks of two builds, taken in one global order (by address) so that no two
// switches can ever wait on each other.
class WriterPairLock {
 public:
  WriterPairLock(ProjectionRunner& a, ProjectionRunner& b) ABSL_NO_THREAD_SAFETY_ANALYSIS
      : first_(std::min(&a.writer_mutex(), &b.writer_mutex(), std::less<absl::Mutex*>())),
        second_(std::max(&a.writer_mutex(), &b.writer_mutex(), std::less<absl::Mutex*>())) {
    first_->Lock();
    second_->Lock();
  }
  ~WriterPairLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    second_->Unlock();
    first_->Unlock();
  }

 private:
  absl::Mutex* const first_;
  absl::Mutex* const second_;
};

// Forgets the catalog's shadow build and the rebuild job that makes it.
void ClearShadow(v1::ProjectionCatalog& catalog) {
  catalog.clear_shadow();
  catalog.clear_shadow_rebuild_id();
  catalog.clear_shadow_request();
  catalog.clear_shadow_started_micros();
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
  spdlog::info("projection {} starts at checkpoint {} ({})", label_, checkpoint, state);
  thread_ = std::thread([this] {
    storage::NameThisThread(StrCat("proj ", label_));
    Run();
  });
  return absl::OkStatus();
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

absl::Status ProjectionRunner::AdvanceToLocked(uint64_t position) {
  ReplayPolicy policy;
  position = std::min(position, events_->HeadPosition());
  while (checkpoint() < position) {
    const uint64_t from = checkpoint();
    ReplayStats stats;
    absl::Status status = ReplayRange(*events_, decoder_, *projector_, from,
                                      std::min<uint64_t>(options_.batch_size, position - from),
                                      policy, live_batch_, stats, label_);
    if (status.ok() && stats.last_position > from) status = live_batch_.Commit(stats.last_position);
    if (!status.ok()) {
      live_batch_.Discard();
      return status;
    }
    if (stats.last_position <= from) break;
    PublishCheckpoint(stats.last_position);
  }
  return absl::OkStatus();
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
    std::shared_ptr<const ProjectionRunner> leader;
    {
      absl::MutexLock lock(&state_mu_);
      leader = leader_;
    }
    const uint64_t head = events_->HeadPosition();
    const uint64_t limit = leader ? std::min(head, leader->checkpoint()) : head;
    if (limit <= checkpoint) {
      if (leader && head > checkpoint) {
        leader->Await(checkpoint + 1, absl::Now() + absl::Milliseconds(100), /*hurry=*/false)
            .IgnoreError();
        absl::SleepFor(absl::Milliseconds(1));
      } else {
        events_->WaitForHead(checkpoint, absl::Now() + absl::Milliseconds(200));
      }
      continue;
    }
    writer_mu_.Lock();
    // A rebuild may have run while this thread waited for the lock.
    if (!Availability().ok()) {
      writer_mu_.Unlock();
      continue;
    }
    const uint64_t from = checkpoint_.load(std::memory_order_acquire);
    if (from >= limit) {
      writer_mu_.Unlock();
      continue;
    }
    ReplayStats stats;
    absl::Status status = ReplayRange(*events_, decoder_, *projector_, from,
                                      std::min<uint64_t>(options_.batch_size, limit - from), policy,
                                      live_batch_, stats, label_);
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
    } else if (stats.events_processed < options_.batch_size) {
      PauseAfterBatch();  // A short batch: this build has reached the head.
    }
  }
}

void ProjectionRunner::PauseAfterBatch() {
  if (options_.tail_interval <= absl::ZeroDuration()) return;
  const storage::SteadyTime until =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options_.tail_interval);
  absl::MutexLock lock(&state_mu_);
  while (hurrying_ == 0 && !stopping_.load() && pause_cv_.WaitUntil(&state_mu_, until)) {
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
  return Await(position, deadline, /*hurry=*/true);
}

absl::Status ProjectionRunner::Await(uint64_t position, absl::Time deadline, bool hurry) const {
  const storage::SteadyTime until = storage::SteadyDeadline(deadline);
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

ProjectionEngine::ProjectionEngine(storage::Database* database, const storage::EventStore* events,
                                   const EventRegistry* registry, ProjectionEngineOptions options)
    : database_(database), events_(events), registry_(registry), options_(std::move(options)) {}

ProjectionEngine::~ProjectionEngine() { Stop(); }

absl::StatusOr<std::shared_ptr<ProjectionRunner>> ProjectionEngine::OpenBuild(
    const Slot& slot, std::string_view name, storage::BuildId build) {
  auto projector = slot.versions.find(build.version);
  if (projector == slot.versions.end()) {
    return absl::FailedPreconditionError(
        StrCat("projection ", name, " build ", build.ToString(),
               " is recorded in the database but this binary has no projector of version ",
               build.version));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<storage::ProjectionStore> store,
                   storage::ProjectionStore::Open(database_, std::string(name), build));
  return std::make_shared<ProjectionRunner>(projector->second, std::move(store), events_, registry_,
                                            options_);
}

absl::Status ProjectionEngine::StartSlot(const std::string& name, Slot& slot) {
  ASSIGN_OR_RETURN(v1::ProjectionCatalog catalog, storage::ReadCatalog(*database_, name));
  const std::vector<std::string> families = database_->FamilyNames();
  const std::string prefix = storage::ProjectionFamilyPrefix(name);
  if (catalog.live().empty()) {
    // The first start with this projection, or a database from before catalogs: the pinned
    // version, else the newest version already stored, else the newest in the binary.
    uint32_t version = slot.versions.rbegin()->first;
    if (auto pinned = options_.initial_versions.find(name);
        pinned != options_.initial_versions.end()) {
      if (!slot.versions.count(pinned->second)) {
        return absl::InvalidArgumentError(
            StrCat("initial version ", pinned->second, " of ", name, " is not in this binary"));
      }
      version = pinned->second;
    } else {
      for (auto it = slot.versions.rbegin(); it != slot.versions.rend(); ++it) {
        if (std::find(families.begin(), families.end(),
                      storage::ProjectionFamily(name, it->first)) != families.end()) {
          version = it->first;
          break;
        }
      }
    }
    catalog.set_live(storage::BuildId{version, 0}.ToString());
    catalog.set_next_generation(1);
    rocksdb::WriteBatch batch;
    storage::PutCatalog(*database_, name, catalog, &batch);
    RETURN_IF_ERROR(storage::WriteSynced(*database_, &batch, "recording a projection catalog"));
  }
  slot.catalog = catalog;
  auto parse = [&](const std::string& text) -> absl::StatusOr<storage::BuildId> {
    std::optional<storage::BuildId> id = storage::BuildId::Parse(text);
    if (!id) return absl::DataLossError(StrCat("catalog of ", name, " names build '", text, "'"));
    return *id;
  };
  ASSIGN_OR_RETURN(storage::BuildId live, parse(catalog.live()));
  ASSIGN_OR_RETURN(slot.live, OpenBuild(slot, name, live));
  std::vector<std::string> kept = {storage::ProjectionFamily(name, live.version, live.generation)};
  if (!catalog.previous().empty()) {
    ASSIGN_OR_RETURN(storage::BuildId previous, parse(catalog.previous()));
    ASSIGN_OR_RETURN(slot.previous, OpenBuild(slot, name, previous));
    slot.previous->SetLeader(slot.live);
    kept.push_back(storage::ProjectionFamily(name, previous.version, previous.generation));
  }
  if (!catalog.shadow().empty()) {
    ASSIGN_OR_RETURN(storage::BuildId shadow, parse(catalog.shadow()));
    ASSIGN_OR_RETURN(slot.shadow, OpenBuild(slot, name, shadow));
    kept.push_back(storage::ProjectionFamily(name, shadow.version, shadow.generation));
    ResumableShadow resumable;
    resumable.projection = name;
    resumable.shadow = slot.shadow;
    resumable.rebuild_id = catalog.shadow_rebuild_id();
    resumable.request.ParseFromString(catalog.shadow_request());
    absl::MutexLock lock(&mu_);
    resumable_.push_back(std::move(resumable));
  }
  // Builds no catalog names: left by a drop that a crash interrupted.
  for (const std::string& family : families) {
    if (family.rfind(prefix, 0) == 0 && std::find(kept.begin(), kept.end(), family) == kept.end()) {
      spdlog::info("dropping stale projection build {}", family);
      RETURN_IF_ERROR(database_->DropFamily(family));
    }
  }
  for (auto* runner : {&slot.live, &slot.previous, &slot.shadow}) {
    if (*runner) RETURN_IF_ERROR((*runner)->Start());
  }
  return absl::OkStatus();
}

absl::Status ProjectionEngine::Start(const std::vector<const Projector*>& projectors) {
  for (const Projector* projector : projectors) {
    auto& slot = slots_[std::string(projector->name())];
    if (!slot) slot = std::make_unique<Slot>();
    slot->versions[projector->version()] = projector;
  }
  for (auto& [name, slot] : slots_) RETURN_IF_ERROR(StartSlot(name, *slot));
  retirer_ = std::thread([this] {
    storage::NameThisThread("fidelis-retire");
    absl::MutexLock lock(&stop_mu_);
    while (!stop_mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1))) {
      stop_mu_.Unlock();
      RetireExpired();
      stop_mu_.Lock();
    }
  });
  return absl::OkStatus();
}

void ProjectionEngine::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
  }
  if (retirer_.joinable()) retirer_.join();
  for (const ProjectionView& view : Views()) {
    for (const auto& runner : {view.live, view.shadow, view.previous}) {
      if (runner) runner->Stop();
    }
  }
}

absl::StatusOr<ProjectionEngine::Slot*> ProjectionEngine::SlotOf(std::string_view name) const {
  auto it = slots_.find(name);
  if (it == slots_.end()) {
    std::string known;
    for (const auto& [n, r] : slots_) known += (known.empty() ? "" : ", ") + n;
    return absl::NotFoundError(
        StrCat("unknown projection '", name.substr(0, 64), "'; known: ", known));
  }
  return it->second.get();
}

absl::StatusOr<std::shared_ptr<ProjectionRunner>> ProjectionEngine::Find(
    std::string_view name) const {
  ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
  absl::MutexLock lock(&mu_);
  return slot->live;
}

absl::StatusOr<ProjectionView> ProjectionEngine::View(std::string_view name) const {
  ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
  ProjectionView view;
  view.name = std::string(name);
  view.newest_version = slot->versions.rbegin()->first;
  absl::MutexLock lock(&mu_);
  view.live = slot->live;
  view.shadow = slot->shadow;
  view.previous = slot->previous;
  view.retire_at = absl::FromUnixMicros(slot->catalog.retire_at_micros());
  view.shadow_rebuild_id = slot->catalog.shadow_rebuild_id();
  return view;
}

std::vector<ProjectionView> ProjectionEngine::Views() const {
  std::vector<ProjectionView> views;
  for (const auto& [name, slot] : slots_) views.push_back(*View(name));
  return views;
}

std::vector<std::shared_ptr<ProjectionRunner>> ProjectionEngine::runners() const {
  std::vector<std::shared_ptr<ProjectionRunner>> out;
  for (const ProjectionView& view : Views()) out.push_back(view.live);
  return out;
}

absl::StatusOr<std::shared_ptr<ProjectionRunner>> ProjectionEngine::Readable(
    std::string_view name, uint32_t version, uint64_t min_position, absl::Time deadline) const {
  ASSIGN_OR_RETURN(ProjectionView view, View(name));
  std::shared_ptr<ProjectionRunner> runner;
  if (version == 0 || version == view.live->build().version) {
    runner = view.live;
  } else if (view.shadow && view.shadow->build().version == version) {
    runner = view.shadow;
  } else if (view.previous && view.previous->build().version == version) {
    runner = view.previous;
  } else {
    std::string served = StrCat("live ", view.live->build().ToString());
    if (view.shadow) served += StrCat(", shadow ", view.shadow->build().ToString());
    if (view.previous) served += StrCat(", previous ", view.previous->build().ToString());
    return InvalidField("projection_version",
                        StrCat(name, " v", version, " is not served; builds: ", served));
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

absl::StatusOr<std::shared_ptr<ProjectionRunner>> ProjectionEngine::Select(
    std::string_view name, std::string_view selector, std::string_view field) const {
  ASSIGN_OR_RETURN(ProjectionView view, View(name));
  std::shared_ptr<ProjectionRunner> chosen;
  if (selector == "live") {
    chosen = view.live;
  } else if (selector == "shadow") {
    chosen = view.shadow;
  } else if (selector == "previous") {
    chosen = view.previous;
  } else if (std::optional<storage::BuildId> id = storage::BuildId::Parse(selector)) {
    const bool exact = selector.find('.') != std::string_view::npos;
    for (const auto& runner : {view.live, view.shadow, view.previous}) {
      if (!runner || chosen) continue;
      if (exact ? runner->build() == *id : runner->build().version == id->version) {
        chosen = runner;
      }
    }
  } else {
    return InvalidField(field, StrCat("'", selector.substr(0, 32),
                                      "' is not live, shadow, previous, a version or a build"));
  }
  if (!chosen) {
    return InvalidField(
        field, StrCat("projection ", name, " has no build '", selector.substr(0, 32), "'"));
  }
  return chosen;
}

std::vector<ResumableShadow> ProjectionEngine::TakeResumable() {
  absl::MutexLock lock(&mu_);
  std::vector<ResumableShadow> out;
  out.swap(resumable_);
  return out;
}

absl::Status ProjectionEngine::CommitCatalog(std::string_view name,
                                             const v1::ProjectionCatalog& catalog,
                                             rocksdb::WriteBatch* batch) {
  ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
  storage::PutCatalog(*database_, name, catalog, batch);
  RETURN_IF_ERROR(
      storage::WriteSynced(*database_, batch, StrCat("recording the builds of ", name)));
  absl::MutexLock lock(&mu_);
  slot->catalog = catalog;
  return absl::OkStatus();
}

void ProjectionEngine::DropBuild(std::shared_ptr<ProjectionRunner> runner) {
  if (!runner) return;
  runner->SetLeader(nullptr);
  runner->Stop();
  const std::string name = runner->store()->name();
  const storage::BuildId build = runner->build();
  // Queries that picked this build before the switch finish reading it first.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (runner.use_count() > 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  if (runner.use_count() > 1) {
    spdlog::warn("projection build {} is still in use; it is dropped at the next start",
                 runner->label());
    return;
  }
  runner.reset();
  absl::Status dropped = storage::ProjectionStore::Drop(database_, name, build);
  if (!dropped.ok()) {
    spdlog::warn("dropping projection build {} {}: {} (retried at the next start)", name,
                 build.ToString(), dropped.ToString());
  }
}

absl::StatusOr<std::shared_ptr<ProjectionRunner>> ProjectionEngine::CreateShadow(
    std::string_view name, uint32_t version, const std::string& rebuild_id,
    const v1::RebuildProjectionRequest& request) {
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
  if (!slot->versions.count(version)) {
    std::string known;
    for (const auto& [v, p] : slot->versions) known += StrCat(known.empty() ? "" : ", ", v);
    return InvalidField("target_version",
                        StrCat(name, " has no version ", version, "; this binary has ", known));
  }
  v1::ProjectionCatalog catalog;
  {
    absl::MutexLock lock(&mu_);
    if (slot->shadow) {
      return absl::FailedPreconditionError(
          StrCat("projection ", name, " already has a shadow build ", slot->catalog.shadow(),
                 " (rebuild ", slot->catalog.shadow_rebuild_id(), "); promote or abort it first"));
    }
    catalog = slot->catalog;
  }
  // A fresh generation unless this version was never stored: a family is never reused.
  storage::BuildId build{version, 0};
  const std::vector<std::string> families = database_->FamilyNames();
  if (std::find(families.begin(), families.end(), storage::ProjectionFamily(name, version)) !=
      families.end()) {
    build.generation = std::max<uint32_t>(catalog.next_generation(), 1);
    catalog.set_next_generation(build.generation + 1);
  }
  ASSIGN_OR_RETURN(std::shared_ptr<ProjectionRunner> shadow, OpenBuild(*slot, name, build));
  rocksdb::WriteBatch batch;
  shadow->store()->PutState(storage::kStateBuilding, &batch);
  catalog.set_shadow(build.ToString());
  catalog.set_shadow_rebuild_id(rebuild_id);
  catalog.set_shadow_request(request.SerializeAsString());
  catalog.set_shadow_started_micros(absl::ToUnixMicros(absl::Now()));
  RETURN_IF_ERROR(CommitCatalog(name, catalog, &batch));
  RETURN_IF_ERROR(shadow->Start());
  absl::MutexLock lock(&mu_);
  slot->shadow = shadow;
  return shadow;
}

// The writer locks are held through WriterPairLock, which the analysis cannot follow.
absl::Status ProjectionEngine::Promote(std::string_view name) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(ProjectionView view, View(name));
  if (!view.shadow) {
    return absl::FailedPreconditionError(StrCat("projection ", name, " has no shadow build"));
  }
  if (absl::Status ready = view.shadow->Availability(); !ready.ok()) {
    return absl::FailedPreconditionError(
        StrCat("the shadow has not caught up yet: ", ready.message()));
  }
  std::shared_ptr<ProjectionRunner> dropped;
  {
    WriterPairLock writers(*view.live, *view.shadow);
    // Nothing the live build applied may be missing from the new live one.
    RETURN_IF_ERROR(view.shadow->AdvanceToLocked(view.live->checkpoint()));
    ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
    v1::ProjectionCatalog catalog;
    {
      absl::MutexLock lock(&mu_);
      catalog = slot->catalog;
    }
    catalog.set_previous(catalog.live());
    catalog.set_live(catalog.shadow());
    catalog.set_retire_at_micros(absl::ToUnixMicros(absl::Now() + options_.rollback_window));
    ClearShadow(catalog);
    rocksdb::WriteBatch batch;
    view.shadow->store()->PutState(storage::kStateLive, &batch);
    RETURN_IF_ERROR(CommitCatalog(name, catalog, &batch));
    {
      absl::MutexLock lock(&mu_);
      dropped = std::move(slot->previous);
      slot->previous = view.live;
      slot->live = view.shadow;
      slot->shadow = nullptr;
    }
    view.shadow->SetLeader(nullptr);
    view.live->SetLeader(view.shadow);
  }
  spdlog::info("projection {}: {} is live; {} kept for a rollback until {}", name,
               view.shadow->build().ToString(), view.live->build().ToString(),
               absl::FormatTime(absl::Now() + options_.rollback_window));
  view = ProjectionView();  // Holds no build that is about to be dropped.
  DropBuild(std::move(dropped));
  return absl::OkStatus();
}

absl::Status ProjectionEngine::DropShadow(std::string_view name) {
  return DropRole(name, &Slot::shadow, "shadow",
                  [](v1::ProjectionCatalog& catalog) { ClearShadow(catalog); });
}

absl::Status ProjectionEngine::Rollback(std::string_view name) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(ProjectionView view, View(name));
  if (!view.previous) {
    return absl::FailedPreconditionError(
        StrCat("projection ", name, " has no previous build to roll back to"));
  }
  if (absl::Status readable = view.previous->Availability(); !readable.ok()) {
    return absl::FailedPreconditionError(
        StrCat("the previous build cannot serve: ", readable.message()));
  }
  {
    WriterPairLock writers(*view.live, *view.previous);
    RETURN_IF_ERROR(view.previous->AdvanceToLocked(view.live->checkpoint()));
    ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
    v1::ProjectionCatalog catalog;
    {
      absl::MutexLock lock(&mu_);
      catalog = slot->catalog;
    }
    catalog.set_live(view.previous->build().ToString());
    catalog.set_previous(view.live->build().ToString());
    catalog.set_retire_at_micros(absl::ToUnixMicros(absl::Now() + options_.rollback_window));
    rocksdb::WriteBatch batch;
    RETURN_IF_ERROR(CommitCatalog(name, catalog, &batch));
    {
      absl::MutexLock lock(&mu_);
      slot->live = view.previous;
      slot->previous = view.live;
    }
    view.previous->SetLeader(nullptr);
    view.live->SetLeader(view.previous);
  }
  spdlog::info("projection {}: rolled back to {}", name, view.previous->build().ToString());
  return absl::OkStatus();
}

absl::Status ProjectionEngine::RetirePrevious(std::string_view name) {
  return DropRole(name, &Slot::previous, "previous", [](v1::ProjectionCatalog& catalog) {
    catalog.clear_previous();
    catalog.clear_retire_at_micros();
  });
}

absl::Status ProjectionEngine::DropRole(std::string_view name,
                                        std::shared_ptr<ProjectionRunner> Slot::*role,
                                        const char* role_name,
                                        const std::function<void(v1::ProjectionCatalog&)>& forget) {
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
  v1::ProjectionCatalog catalog;
  std::shared_ptr<ProjectionRunner> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped = slot->*role;
    catalog = slot->catalog;
  }
  if (!dropped) {
    return absl::FailedPreconditionError(
        StrCat("projection ", name, " has no ", role_name, " build"));
  }
  forget(catalog);
  rocksdb::WriteBatch batch;
  RETURN_IF_ERROR(CommitCatalog(name, catalog, &batch));
  {
    absl::MutexLock lock(&mu_);
    slot->*role = nullptr;
  }
  spdlog::info("projection {}: {} build {} dropped", name, role_name, dropped->build().ToString());
  DropBuild(std::move(dropped));
  return absl::OkStatus();
}

void ProjectionEngine::RetireExpired() {
  const absl::Time now = absl::Now();
  std::vector<std::string> expired;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, slot] : slots_) {
      if (slot->previous && absl::FromUnixMicros(slot->catalog.retire_at_micros()) <= now) {
        expired.push_back(name);
      }
    }
  }
  for (const std::string& name : expired) {
    absl::Status retired = RetirePrevious(name);
    if (!retired.ok()) spdlog::warn("retiring {}: {}", name, retired.ToString());
  }
}

namespace {

// A row for people: JSON when its type is known, else its bytes in hex.
std::string RenderRow(const Projector& projector, std::string_view key, std::string_view bytes) {
  const google::protobuf::Message* type = projector.RowType(key);
  if (type != nullptr) {
    std::unique_ptr<google::protobuf::Message> row(type->New());
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    if (row->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) &&
        google::protobuf::util::MessageToJsonString(*row, &json, options).ok()) {
      return json;
    }
  }
  std::string hex;
  for (unsigned char c : bytes) absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  return hex;
}

// The fields that differ between two rows of the same type, one per line.
std::string FieldDifferences(const Projector& a_projector, const Projector& b_projector,
                             std::string_view key, std::string_view a, std::string_view b) {
  const google::protobuf::Message* a_type = a_projector.RowType(key);
  const google::protobuf::Message* b_type = b_projector.RowType(key);
  if (a_type == nullptr || a_type != b_type) return "the rows differ (types differ or unknown)";
  std::unique_ptr<google::protobuf::Message> a_row(a_type->New()), b_row(b_type->New());
  if (!a_row->ParseFromArray(a.data(), static_cast<int>(a.size())) ||
      !b_row->ParseFromArray(b.data(), static_cast<int>(b.size()))) {
    return "a row does not parse";
  }
  std::string report;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&report);
  differencer.Compare(*a_row, *b_row);
  return report.empty() ? "the encodings differ" : report;
}

v1::ProjectionBuild DescribeBuild(const ProjectionRunner& runner, uint64_t rows) {
  v1::ProjectionBuild out;
  out.set_build(runner.build().ToString());
  out.set_version(runner.build().version);
  out.set_checkpoint(runner.checkpoint());
  out.set_rows(rows);
  return out;
}

}  // namespace

absl::StatusOr<v1::DiffProjectionResponse> ProjectionEngine::Diff(
    std::string_view name, std::string_view a_selector, std::string_view b_selector,
    size_t max_differences) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(std::shared_ptr<ProjectionRunner> a, Select(name, a_selector, "a"));
  ASSIGN_OR_RETURN(std::shared_ptr<ProjectionRunner> b, Select(name, b_selector, "b"));
  if (a == b) {
    return InvalidField("b", StrCat("selects the same build as a (", a->build().ToString(), ")"));
  }
  for (const auto* runner : {a.get(), b.get()}) {
    if (absl::Status readable = runner->Availability(); !readable.ok()) {
      return absl::FailedPreconditionError(
          StrCat("cannot compare ", runner->label(), ": ", readable.message()));
    }
  }
  // Both at the same checkpoint, the head of the log when the call came (so the comparison
  // covers every event appended before it, whatever pause either build's tailing thread is
  // in), then a snapshot: the comparison runs without holding anyone.
  const rocksdb::Snapshot* snapshot = nullptr;
  uint64_t checkpoint = 0;
  {
    const uint64_t head = events_->HeadPosition();
    WriterPairLock writers(*a, *b);
    checkpoint = std::max({a->checkpoint(), b->checkpoint(), head});
    RETURN_IF_ERROR(a->AdvanceToLocked(checkpoint));
    RETURN_IF_ERROR(b->AdvanceToLocked(checkpoint));
    if (a->checkpoint() != b->checkpoint()) {
      return absl::InternalError(StrCat("could not align ", a->label(), " at ", a->checkpoint(),
                                        " and ", b->label(), " at ", b->checkpoint()));
    }
    snapshot = database_->db()->GetSnapshot();
  }
  v1::DiffProjectionResponse response;
  response.set_checkpoint(checkpoint);
  uint64_t a_rows = 0, b_rows = 0;
  absl::Status compared = storage::ProjectionStore::Compare(
      *a->store(), *b->store(), snapshot,
      [&](std::string_view key, std::optional<std::string_view> a_value,
          std::optional<std::string_view> b_value) {
        response.set_differing_rows(response.differing_rows() + 1);
        if (!b_value) response.set_only_in_a(response.only_in_a() + 1);
        if (!a_value) response.set_only_in_b(response.only_in_b() + 1);
        if (static_cast<size_t>(response.differences_size()) >= max_differences) return;
        v1::RowDifference* difference = response.add_differences();
        difference->set_key(std::string(key));
        if (a_value) difference->set_a(RenderRow(a->projector(), key, *a_value));
        if (b_value) difference->set_b(RenderRow(b->projector(), key, *b_value));
        if (a_value && b_value) {
          difference->set_fields(
              FieldDifferences(a->projector(), b->projector(), key, *a_value, *b_value));
        } else {
          difference->set_fields(a_value ? "only in a" : "only in b");
        }
      },
      &a_rows, &b_rows);
  database_->db()->ReleaseSnapshot(snapshot);
  RETURN_IF_ERROR(compared);
  *response.mutable_a() = DescribeBuild(*a, a_rows);
  *response.mutable_b() = DescribeBuild(*b, b_rows);
  response.mutable_a()->set_checkpoint(checkpoint);
  response.mutable_b()->set_checkpoint(checkpoint);
  return response;
}

}  // namespace fidelis::server
