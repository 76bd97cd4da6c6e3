#include "server/api/account_queries_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "domain/account.h"
#include "domain/errors.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "grpcpp/alarm.h"
#include "server/api/grpc_status.h"
#include "server/api/page_token.h"
#include "server/api/request_parsing.h"

namespace fidelis::server {
namespace {

constexpr absl::Duration kDeadlineMargin = absl::Milliseconds(25);

absl::Status ValidatePageSize(int32_t page_size) {
  if (page_size < 0 || page_size > kMaxPageSize) {
    return InvalidField("page_size",
                        StrCat("must be between 0 and ", kMaxPageSize, ", got ", page_size));
  }
  return absl::OkStatus();
}

// One row of a projection keyed by account id, parsed into `response`.
absl::Status ReadRow(const ProjectionRunner& runner, const std::string& account_id,
                     google::protobuf::Message* response) {
  ASSIGN_OR_RETURN(std::optional<std::string> row, runner.store().Get(account_id));
  if (!row.has_value()) {
    return absl::NotFoundError(StrCat("account ", account_id, " does not exist"));
  }
  if (!response->ParseFromString(*row)) {
    return absl::DataLossError(StrCat("row ", account_id, " does not parse"));
  }
  return absl::OkStatus();
}

// Reads the answer from `runner`, tagging it with the build that answered and how far it and
// this node's log had got.
grpc::Status Answer(grpc::CallbackServerContext* context, const storage::EventStore& events,
                    const ProjectionRunner& runner, AccountQueriesService::ReadFn& read) {
  context->AddTrailingMetadata("fidelis-projection-build", runner.build().ToString());
  context->AddTrailingMetadata("fidelis-projection-checkpoint", StrCat(runner.checkpoint()));
  context->AddTrailingMetadata("fidelis-log-head", StrCat(events.HeadPosition()));
  absl::Status status = read(runner);
  // A rebuild may have started while the rows were read; never present them as complete.
  if (status.ok()) status = runner.Availability();
  return ToGrpcStatus(status);
}

// A query waiting for its build to apply a position. Finishes once, with whichever comes
// first: the position applied (the answer), the build made unreadable (UNAVAILABLE), the
// deadline (DEADLINE_EXCEEDED), the client cancelling (CANCELLED) or the server stopping
// (UNAVAILABLE).
//
// Lifetime: deletes itself once gRPC (OnDone), its alarm and its waiter have all let go. The
// alarm's callback always runs, once: at the deadline, or at once when cancelled.
class PendingQuery final : public grpc::ServerUnaryReactor, private ShutdownListener {
 public:
  PendingQuery(grpc::CallbackServerContext* context, const storage::EventStore* events,
               ServingState* serving, std::shared_ptr<ProjectionRunner> runner, uint64_t position,
               AccountQueriesService::ReadFn read)
      : context_(context),
        events_(events),
        serving_(serving),
        runner_(std::move(runner)),
        position_(position),
        read_(std::move(read)) {}

  void Start(absl::Duration wait) {
    if (!serving_->Subscribe(this)) {
      refs_.store(1);
      Claim();
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
      return;
    }
    subscribed_ = true;
    alarm_.Set(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(wait),
               [this](bool) { OnAlarm(); });
    bool cut;
    {
      absl::MutexLock lock(&mu_);
      cut = cut_ != Cut::kNone;
    }
    // The server began stopping after Subscribe but before the alarm was set, so CutShort's
    // cancel found no alarm: cancel the one now set.
    if (cut) alarm_.Cancel();
    const uint64_t id =
        runner_->WhenApplied(position_, [this](const absl::Status& status) { OnApplied(status); });
    bool forget;
    {
      absl::MutexLock lock(&mu_);
      waiter_id_ = id;
      forget = claimed_ && id != 0;
    }
    // The alarm won before the waiter was registered: forget it now.
    if (forget && runner_->CancelWaiter(id)) Release();
  }

 private:
  enum class Cut { kNone, kDeadline, kCancelled, kShutdown };

  // True for the first of the ways the call can end.
  bool Claim() {
    absl::MutexLock lock(&mu_);
    if (claimed_) return false;
    claimed_ = true;
    return true;
  }

  void OnApplied(const absl::Status& status) {
    if (Claim()) {
      Finish(status.ok() ? Answer(context_, *events_, *runner_, read_) : ToGrpcStatus(status));
      alarm_.Cancel();
    }
    Release();  // The waiter's hold.
  }

  void OnAlarm() {
    uint64_t id = 0;
    Cut cut;
    bool won = false;
    {
      absl::MutexLock lock(&mu_);
      cut = cut_ == Cut::kNone ? Cut::kDeadline : cut_;
      if (!claimed_) {
        claimed_ = won = true;
        id = waiter_id_;
      }
    }
    if (won) {
      if (id != 0 && runner_->CancelWaiter(id)) Release();
      Finish(CutStatus(cut));
    }
    Release();  // The alarm's hold.
  }

  grpc::Status CutStatus(Cut cut) const {
    switch (cut) {
      case Cut::kCancelled:
        return grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
      case Cut::kShutdown:
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      case Cut::kNone:
      case Cut::kDeadline:
        break;
    }
    return grpc::Status(
        grpc::StatusCode::DEADLINE_EXCEEDED,
        StrCat("projection ", runner_->label(), " has applied up to global position ",
               runner_->checkpoint(), ", not yet ", position_,
               " (min_global_position), by the call's deadline; this node's log holds up to ",
               events_->HeadPosition()));
  }

  // Ends the wait early: the alarm fires at once and finishes the call.
  void CutShort(Cut cut) {
    {
      absl::MutexLock lock(&mu_);
      if (claimed_ || cut_ != Cut::kNone) return;
      cut_ = cut;
    }
    alarm_.Cancel();
  }

  void OnCancel() override { CutShort(Cut::kCancelled); }
  // Under the ServingState's lock: only cancels the alarm, whose callback finishes the call.
  void OnShutdown() override { CutShort(Cut::kShutdown); }

  void OnDone() override {
    if (subscribed_) serving_->Unsubscribe(this);
    Release();  // gRPC's hold.
  }

  void Release() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  grpc::CallbackServerContext* const context_;
  const storage::EventStore* const events_;
  ServingState* const serving_;
  const std::shared_ptr<ProjectionRunner> runner_;
  const uint64_t position_;
  AccountQueriesService::ReadFn read_;
  grpc::Alarm alarm_;
  bool subscribed_ = false;  // Set in Start, read in OnDone.
  // Holds: gRPC's until OnDone, the alarm's until its callback, the waiter's until it runs or
  // is cancelled.
  std::atomic<int> refs_{3};

  absl::Mutex mu_;
  bool claimed_ ABSL_GUARDED_BY(mu_) = false;
  Cut cut_ ABSL_GUARDED_BY(mu_) = Cut::kNone;
  uint64_t waiter_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

grpc::ServerUnaryReactor* AccountQueriesService::Serve(grpc::CallbackServerContext* context,
                                                       absl::Status checked,
                                                       std::string_view projection,
                                                       uint32_t version, uint64_t min_position,
                                                       ReadFn read) const {
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> runner =
      checked.ok() ? engine_->ReadableBuild(projection, version, min_position)
                   : absl::StatusOr<std::shared_ptr<ProjectionRunner>>(std::move(checked));
  if (runner.ok() && (*runner)->checkpoint() < min_position) {
    auto* pending = new PendingQuery(context, events_, serving_, *std::move(runner), min_position,
                                     std::move(read));
    // Answer a little before the deadline, so that the client gets the explanation rather
    // than its own library's bare DEADLINE_EXCEEDED.
    const absl::Time now = clock_->Now();
    pending->Start(std::max(CallDeadline(*context, kMaxQueryWait, now) - now - kDeadlineMargin,
                            absl::ZeroDuration()));
    return pending;
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(runner.ok() ? Answer(context, *events_, **runner, read)
                              : ToGrpcStatus(runner.status()));
  return reactor;
}

grpc::ServerUnaryReactor* AccountQueriesService::GetAccountSummary(
    grpc::CallbackServerContext* context, const v1::GetAccountSummaryRequest* request,
    v1::AccountSummary* response) {
  absl::Status checked = auth_->Check(*context, Scope::kClient);
  if (checked.ok()) checked = ValidateAccountId("account_id", request->account_id());
  return Serve(context, std::move(checked), "AccountSummary", request->projection_version(),
               request->min_global_position(), [request, response](const ProjectionRunner& runner) {
                 return ReadRow(runner, request->account_id(), response);
               });
}

grpc::ServerUnaryReactor* AccountQueriesService::GetAccountReport(
    grpc::CallbackServerContext* context, const v1::GetAccountReportRequest* request,
    v1::AccountReport* response) {
  absl::Status checked = auth_->Check(*context, Scope::kClient);
  if (checked.ok()) checked = ValidateAccountId("account_id", request->account_id());
  return Serve(context, std::move(checked), "AccountReport", request->projection_version(),
               request->min_global_position(), [request, response](const ProjectionRunner& runner) {
                 return ReadRow(runner, request->account_id(), response);
               });
}

grpc::ServerUnaryReactor* AccountQueriesService::GetLedgerTotals(
    grpc::CallbackServerContext* context, const v1::GetLedgerTotalsRequest* request,
    v1::LedgerTotals* response) {
  return Serve(
      context, auth_->Check(*context, Scope::kClient), "LedgerTotals",
      request->projection_version(), request->min_global_position(),
      [response](const ProjectionRunner& runner) -> absl::Status {
        absl::Status parse_error;
        RETURN_IF_ERROR(
            runner.store().Scan("", SIZE_MAX, [&](std::string_view key, std::string_view value) {
              const bool ok =
                  key.rfind("currency/", 0) == 0
                      ? response->add_currencies()->ParseFromArray(value.data(), value.size())
                      : response->add_days()->ParseFromArray(value.data(), value.size());
              if (!ok) parse_error = absl::DataLossError(StrCat("row ", key, " does not parse"));
              return ok;
            }));
        return parse_error;
      });
}

grpc::ServerUnaryReactor* AccountQueriesService::ListAccountSummaries(
    grpc::CallbackServerContext* context, const v1::ListAccountSummariesRequest* request,
    v1::ListAccountSummariesResponse* response) {
  absl::Status checked = auth_->Check(*context, Scope::kClient);
  if (checked.ok()) checked = ValidatePageSize(request->page_size());
  std::string after;
  if (checked.ok()) {
    absl::StatusOr<std::string> token = ParsePageToken(request->page_token());
    if (token.ok()) {
      after = *std::move(token);
    } else {
      checked = token.status();
    }
  }
  const size_t page_size = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  return Serve(context, std::move(checked), "AccountSummary", request->projection_version(),
               request->min_global_position(),
               [response, page_size,
                after = std::move(after)](const ProjectionRunner& runner) -> absl::Status {
                 absl::Status parse_error;
                 std::string last_key;
                 // Read one more than a page to know whether another page follows.
                 RETURN_IF_ERROR(runner.store().Scan(
                     after, page_size + 1, [&](std::string_view key, std::string_view value) {
                       if (static_cast<size_t>(response->accounts_size()) == page_size) {
                         response->set_next_page_token(MakePageToken(last_key));
                         return false;
                       }
                       if (!response->add_accounts()->ParseFromArray(
                               value.data(), static_cast<int>(value.size()))) {
                         parse_error = absl::DataLossError(StrCat("row ", key, " does not parse"));
                         return false;
                       }
                       last_key = std::string(key);
                       return true;
                     }));
                 return parse_error;
               });
}

}  // namespace fidelis::server
