// AccountQueriesService: fidelis.v1.AccountQueries, the reads of the projections.
//
// Synchronous handlers: a query may wait, up to its deadline (at most kMaxQueryWait), for the
// projection to apply min_global_position, so that a client reads its own writes. Every answer
// carries the trailing metadata fidelis-projection-build and fidelis-projection-checkpoint.
//
// Thread-safety: immutable after construction; the engine, authenticator and clock are not
// owned and must outlive the service.
#pragma once

#include "absl/time/time.h"
#include "domain/clock.h"
#include "fidelis/v1/accounts.grpc.pb.h"
#include "server/api/auth.h"
#include "server/read/projection_engine.h"

namespace fidelis::server {

inline constexpr int kMaxPageSize = 1000;
inline constexpr int kDefaultPageSize = 100;
// A query waits at most this long for min_global_position when the call has no deadline.
inline constexpr absl::Duration kMaxQueryWait = absl::Seconds(30);

class AccountQueriesService final : public v1::AccountQueries::Service {
 public:
  AccountQueriesService(const ProjectionEngine* engine, const Authenticator* auth,
                        const Clock* clock)
      : engine_(engine), auth_(auth), clock_(clock) {}

  grpc::Status GetAccountSummary(grpc::ServerContext* context,
                                 const v1::GetAccountSummaryRequest* request,
                                 v1::AccountSummary* response) override;
  grpc::Status ListAccountSummaries(grpc::ServerContext* context,
                                    const v1::ListAccountSummariesRequest* request,
                                    v1::ListAccountSummariesResponse* response) override;
  grpc::Status GetAccountReport(grpc::ServerContext* context,
                                const v1::GetAccountReportRequest* request,
                                v1::AccountReport* response) override;
  grpc::Status GetLedgerTotals(grpc::ServerContext* context,
                               const v1::GetLedgerTotalsRequest* request,
                               v1::LedgerTotals* response) override;

 private:
  // The build `projection` is read from, once it has applied `min_position`; tags the answer
  // with it.
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> Readable(grpc::ServerContext* context,
                                                             std::string_view projection,
                                                             uint32_t version,
                                                             uint64_t min_position) const;
  // One row of `projection` keyed by account id, parsed into `response`.
  absl::Status GetRow(grpc::ServerContext* context, std::string_view projection,
                      const std::string& account_id, uint64_t min_position, uint32_t version,
                      google::protobuf::Message* response) const;

  const ProjectionEngine* const engine_;
  const Authenticator* const auth_;
  const Clock* const clock_;
};

}  // namespace fidelis::server
