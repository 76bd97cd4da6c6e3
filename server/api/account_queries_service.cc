#include "server/api/account_queries_service.h"

#include "domain/account.h"
#include "domain/errors.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "server/api/grpc_status.h"
#include "server/api/page_token.h"
#include "server/api/request_parsing.h"

namespace fidelis::server {
namespace {

absl::Status ValidatePageSize(int32_t page_size) {
  if (page_size < 0 || page_size > kMaxPageSize) {
    return InvalidField("page_size",
                        StrCat("must be between 0 and ", kMaxPageSize, ", got ", page_size));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<ProjectionRunner>> AccountQueriesService::Readable(
    grpc::ServerContext* context, std::string_view projection, uint32_t version,
    uint64_t min_position) const {
  ASSIGN_OR_RETURN(std::shared_ptr<ProjectionRunner> runner,
                   engine_->Readable(projection, version, min_position,
                                     CallDeadline(*context, kMaxQueryWait, clock_->Now())));
  // Tells the caller which build answered and how far it had applied the log.
  context->AddTrailingMetadata("fidelis-projection-build", runner->build().ToString());
  context->AddTrailingMetadata("fidelis-projection-checkpoint", StrCat(runner->checkpoint()));
  return runner;
}

absl::Status AccountQueriesService::GetRow(grpc::ServerContext* context,
                                           std::string_view projection,
                                           const std::string& account_id, uint64_t min_position,
                                           uint32_t version,
                                           google::protobuf::Message* response) const {
  RETURN_IF_ERROR(auth_->Check(*context, Scope::kClient));
  RETURN_IF_ERROR(ValidateAccountId("account_id", account_id));
  ASSIGN_OR_RETURN(std::shared_ptr<ProjectionRunner> runner,
                   Readable(context, projection, version, min_position));
  ASSIGN_OR_RETURN(std::optional<std::string> row, runner->store().Get(account_id));
  if (!row.has_value())
    return absl::NotFoundError(StrCat("account ", account_id, " does not exist"));
  if (!response->ParseFromString(*row)) {
    return absl::DataLossError(StrCat("row ", account_id, " does not parse"));
  }
  // A rebuild may have started while the row was read; never present such a row as complete.
  return runner->Availability();
}

grpc::Status AccountQueriesService::GetAccountSummary(grpc::ServerContext* context,
                                                      const v1::GetAccountSummaryRequest* request,
                                                      v1::AccountSummary* response) {
  return ToGrpcStatus(GetRow(context, "AccountSummary", request->account_id(),
                             request->min_global_position(), request->projection_version(),
                             response));
}

grpc::Status AccountQueriesService::GetAccountReport(grpc::ServerContext* context,
                                                     const v1::GetAccountReportRequest* request,
                                                     v1::AccountReport* response) {
  return ToGrpcStatus(GetRow(context, "AccountReport", request->account_id(),
                             request->min_global_position(), request->projection_version(),
                             response));
}

grpc::Status AccountQueriesService::GetLedgerTotals(grpc::ServerContext* context,
                                                    const v1::GetLedgerTotalsRequest* request,
                                                    v1::LedgerTotals* response) {
  return ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(auth_->Check(*context, Scope::kClient));
    ASSIGN_OR_RETURN(std::shared_ptr<ProjectionRunner> runner,
                     Readable(context, "LedgerTotals", request->projection_version(),
                              request->min_global_position()));
    absl::Status parse_error;
    RETURN_IF_ERROR(
        runner->store().Scan("", SIZE_MAX, [&](std::string_view key, std::string_view value) {
          const bool ok =
              key.rfind("currency/", 0) == 0
                  ? response->add_currencies()->ParseFromArray(value.data(), value.size())
                  : response->add_days()->ParseFromArray(value.data(), value.size());
          if (!ok) parse_error = absl::DataLossError(StrCat("row ", key, " does not parse"));
          return ok;
        }));
    RETURN_IF_ERROR(parse_error);
    return runner->Availability();
  }());
}

grpc::Status AccountQueriesService::ListAccountSummaries(
    grpc::ServerContext* context, const v1::ListAccountSummariesRequest* request,
    v1::ListAccountSummariesResponse* response) {
  return ToGrpcStatus([&]() -> absl::Status {
    RETURN_IF_ERROR(auth_->Check(*context, Scope::kClient));
    RETURN_IF_ERROR(ValidatePageSize(request->page_size()));
    ASSIGN_OR_RETURN(std::string after, ParsePageToken(request->page_token()));
    ASSIGN_OR_RETURN(std::shared_ptr<ProjectionRunner> runner,
                     Readable(context, "AccountSummary", request->projection_version(),
                              request->min_global_position()));
    const size_t page_size = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
    absl::Status parse_error;
    std::string last_key;
    // Read one more than a page to know whether another page follows.
    RETURN_IF_ERROR(runner->store().Scan(
        after, page_size + 1, [&](std::string_view key, std::string_view value) {
          if (static_cast<size_t>(response->accounts_size()) == page_size) {
            response->set_next_page_token(MakePageToken(last_key));
            return false;
          }
          if (!response->add_accounts()->ParseFromArray(value.data(),
                                                        static_cast<int>(value.size()))) {
            parse_error = absl::DataLossError(StrCat("row ", key, " does not parse"));
            return false;
          }
          last_key = std::string(key);
          return true;
        }));
    RETURN_IF_ERROR(parse_error);
    return runner->Availability();
  }());
}

}  // namespace fidelis::server
