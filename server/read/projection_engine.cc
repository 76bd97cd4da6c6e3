#include "server/read/projection_engine.h"

#include <algorithm>

#include "domain/errors.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "server/read/projection_diff.h"
#include "spdlog/spdlog.h"
#include "storage/thread_name.h"

namespace fidelis::server {

ProjectionEngine::ProjectionEngine(storage::Database* database, const storage::EventStore* events,
                                   const EventRegistry* registry, const Clock* clock,
                                   ProjectionEngineOptions options)
    : database_(database),
      events_(events),
      registry_(registry),
      clock_(clock),
      options_(std::move(options)),
      catalog_(database) {}

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
                                            clock_, options_);
}

absl::Status ProjectionEngine::StartSlot(const std::string& name, Slot& slot) {
  ASSIGN_OR_RETURN(v1::ProjectionCatalog catalog, catalog_.Read(name));
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
        if (catalog_.HasFamily(name, storage::BuildId{it->first, 0})) {
          version = it->first;
          break;
        }
      }
    }
    ASSIGN_OR_RETURN(catalog, catalog_.Initialize(name, storage::BuildId{version, 0}));
  }
  slot.catalog = catalog;
  auto open = [&](const std::string& text) -> absl::StatusOr<std::shared_ptr<ProjectionRunner>> {
    std::optional<storage::BuildId> id = storage::BuildId::Parse(text);
    if (!id) return absl::DataLossError(StrCat("catalog of ", name, " names build '", text, "'"));
    return OpenBuild(slot, name, *id);
  };
  ASSIGN_OR_RETURN(slot.live, open(catalog.live()));
  if (!catalog.previous().empty()) {
    ASSIGN_OR_RETURN(slot.previous, open(catalog.previous()));
    slot.previous->SetLeader(slot.live);
  }
  if (!catalog.shadow().empty()) {
    ASSIGN_OR_RETURN(slot.shadow, open(catalog.shadow()));
    ResumableShadow resumable;
    resumable.projection = name;
    resumable.shadow = slot.shadow;
    resumable.rebuild_id = catalog.shadow_rebuild_id();
    if (!resumable.request.ParseFromString(catalog.shadow_request())) {
      return absl::DataLossError(
          StrCat("catalog of ", name, " holds a request that does not parse"));
    }
    absl::MutexLock lock(&mu_);
    resumable_.push_back(std::move(resumable));
  }
  for (const std::string& family : catalog_.StaleFamilies(name, catalog)) {
    spdlog::info("dropping stale projection build {}", family);
    RETURN_IF_ERROR(database_->DropFamily(family));
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

absl::StatusOr<std::shared_ptr<ProjectionRunner>> ProjectionEngine::ReadableBuild(
    std::string_view name, uint32_t version, uint64_t min_position) const {
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
  if (min_position > events_->HeadPosition()) {
    // Beyond this node's log: a local log says so at once; a cluster node's replica may get
    // there (DEADLINE_EXCEEDED now), and the caller waits for it.
    absl::Status held = events_->AwaitPosition(min_position, absl::ZeroDuration());
    if (absl::IsOutOfRange(held)) {
      return InvalidField("min_global_position", std::string(held.message()));
    }
  }
  RETURN_IF_ERROR(runner->Availability());
  return runner;
}

absl::StatusOr<std::shared_ptr<ProjectionRunner>> ProjectionEngine::Readable(
    std::string_view name, uint32_t version, uint64_t min_position, absl::Time deadline) const {
  ASSIGN_OR_RETURN(std::shared_ptr<ProjectionRunner> runner,
                   ReadableBuild(name, version, min_position));
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

void ProjectionEngine::DropBuild(std::shared_ptr<ProjectionRunner> runner) {
  if (!runner) return;
  runner->SetLeader(nullptr);
  runner->Stop();
  const std::string name = runner->store().name();
  const storage::BuildId build = runner->build();
  // Queries that picked this build before the switch finish reading it first.
  const absl::Time deadline = clock_->Now() + absl::Seconds(30);
  while (runner.use_count() > 1 && clock_->Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
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
    catalog = slot->catalog;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<ProjectionRunner> shadow,
                   OpenBuild(*slot, name, catalog_.NextShadow(name, catalog, version)));
  {
    BuildWriter writer(*shadow);
    ASSIGN_OR_RETURN(catalog, catalog_.AddShadow(name, catalog, writer.store(), rebuild_id,
                                                 request.SerializeAsString(), clock_->Now()));
  }
  RETURN_IF_ERROR(shadow->Start());
  absl::MutexLock lock(&mu_);
  slot->catalog = std::move(catalog);
  slot->shadow = shadow;
  return shadow;
}

absl::Status ProjectionEngine::Promote(std::string_view name) {
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
  ASSIGN_OR_RETURN(ProjectionView view, View(name));
  if (!view.shadow) {
    return absl::FailedPreconditionError(StrCat("projection ", name, " has no shadow build"));
  }
  if (absl::Status ready = view.shadow->Availability(); !ready.ok()) {
    return absl::FailedPreconditionError(
        StrCat("the shadow has not caught up yet: ", ready.message()));
  }
  const absl::Time retire_at = clock_->Now() + options_.rollback_window;
  std::shared_ptr<ProjectionRunner> dropped;
  {
    BuildWriterPair writers(*view.live, *view.shadow);
    BuildWriter& shadow = writers.b();
    // Nothing the live build applied may be missing from the new live one.
    RETURN_IF_ERROR(shadow.AdvanceTo(view.live->checkpoint()));
    v1::ProjectionCatalog catalog;
    {
      absl::MutexLock lock(&mu_);
      catalog = slot->catalog;
    }
    ASSIGN_OR_RETURN(catalog, catalog_.Promote(name, catalog, shadow.store(), retire_at));
    {
      absl::MutexLock lock(&mu_);
      slot->catalog = std::move(catalog);
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
               absl::FormatTime(retire_at));
  view = ProjectionView();  // Holds no build that is about to be dropped.
  DropBuild(std::move(dropped));
  return absl::OkStatus();
}

absl::Status ProjectionEngine::Rollback(std::string_view name) {
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
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
    BuildWriterPair writers(*view.live, *view.previous);
    RETURN_IF_ERROR(writers.b().AdvanceTo(view.live->checkpoint()));
    v1::ProjectionCatalog catalog;
    {
      absl::MutexLock lock(&mu_);
      catalog = slot->catalog;
    }
    ASSIGN_OR_RETURN(catalog,
                     catalog_.Rollback(name, catalog, clock_->Now() + options_.rollback_window));
    {
      absl::MutexLock lock(&mu_);
      slot->catalog = std::move(catalog);
      slot->live = view.previous;
      slot->previous = view.live;
    }
    view.previous->SetLeader(nullptr);
    view.live->SetLeader(view.previous);
  }
  spdlog::info("projection {}: rolled back to {}", name, view.previous->build().ToString());
  return absl::OkStatus();
}

absl::Status ProjectionEngine::DropShadow(std::string_view name) {
  return DropRole(name, Role::kShadow);
}

absl::Status ProjectionEngine::RetirePrevious(std::string_view name) {
  return DropRole(name, Role::kPrevious);
}

absl::Status ProjectionEngine::DropRole(std::string_view name, Role role) {
  const char* role_name = role == Role::kShadow ? "shadow" : "previous";
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(Slot * slot, SlotOf(name));
  std::shared_ptr<ProjectionRunner> Slot::*member =
      role == Role::kShadow ? &Slot::shadow : &Slot::previous;
  v1::ProjectionCatalog catalog;
  std::shared_ptr<ProjectionRunner> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped = slot->*member;
    catalog = slot->catalog;
  }
  if (!dropped) {
    return absl::FailedPreconditionError(
        StrCat("projection ", name, " has no ", role_name, " build"));
  }
  ASSIGN_OR_RETURN(catalog, role == Role::kShadow ? catalog_.DropShadow(name, catalog)
                                                  : catalog_.RetirePrevious(name, catalog));
  {
    absl::MutexLock lock(&mu_);
    slot->catalog = std::move(catalog);
    slot->*member = nullptr;
  }
  spdlog::info("projection {}: {} build {} dropped", name, role_name, dropped->build().ToString());
  DropBuild(std::move(dropped));
  return absl::OkStatus();
}

void ProjectionEngine::RetireExpired() {
  const absl::Time now = clock_->Now();
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

absl::StatusOr<v1::DiffProjectionResponse> ProjectionEngine::Diff(std::string_view name,
                                                                  std::string_view a_selector,
                                                                  std::string_view b_selector,
                                                                  size_t max_differences) {
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
  const uint64_t head = events_->HeadPosition();
  std::unique_ptr<storage::ReadSnapshot> snapshot;
  uint64_t checkpoint = 0;
  {
    BuildWriterPair writers(*a, *b);
    checkpoint = std::max({a->checkpoint(), b->checkpoint(), head});
    RETURN_IF_ERROR(writers.a().AdvanceTo(checkpoint));
    RETURN_IF_ERROR(writers.b().AdvanceTo(checkpoint));
    if (a->checkpoint() != b->checkpoint()) {
      return absl::InternalError(StrCat("could not align ", a->label(), " at ", a->checkpoint(),
                                        " and ", b->label(), " at ", b->checkpoint()));
    }
    snapshot = std::make_unique<storage::ReadSnapshot>(database_);
  }
  return DiffBuilds(*a, *b, *snapshot, checkpoint, max_differences);
}

}  // namespace fidelis::server
