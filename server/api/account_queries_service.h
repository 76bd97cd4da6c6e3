// AccountQueriesService: fidelis.v1.AccountQueries, the reads of the projections.
//
// Callback handlers. A query whose build has applied min_global_position already (every query
// without one) is answered at once on the gRPC thread that received it. Otherwise the call
// waits, without holding a thread, up to its deadline (at most kMaxQueryWait) for the build to
// apply it (ProjectionRunner::WhenApplied), so that a client reads its own writes; on a cluster
// node that includes waiting for the local replica to hold that position.
//
// Every answer carries the trailing metadata fidelis-projection-build (the build that answered),
// fidelis-projection-checkpoint (the global position it had applied) and fidelis-log-head (the
// head of this node's log: on a cluster node, how far its replica has copied the stream).
//
// Thread-safety: immutable after construction; the engine, event store, serving state,
// authenticator and clock are not owned and must outlive the server's calls.
#pragma once

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "fidelis/v1/accounts.grpc.pb.h"
#include "server/api/auth.h"
#include "server/api/serving_state.h"
#include "server/read/projection_engine.h"
#include "storage/event_store.h"

namespace fidelis::server {

inline constexpr int kMaxPageSize = 1000;
inline constexpr int kDefaultPageSize = 100;
// A query waits at most this long for min_global_position when the call has no deadline.
inline constexpr absl::Duration kMaxQueryWait = absl::Seconds(30);

class AccountQueriesService final : public v1::AccountQueries::CallbackService {
 public:
  AccountQueriesService(const ProjectionEngine* engine, const storage::EventStore* events,
                        ServingState* serving, const Authenticator* auth, const Clock* clock)
      : engine_(engine), events_(events), serving_(serving), auth_(auth), clock_(clock) {}

  grpc::ServerUnaryReactor* GetAccountSummary(grpc::CallbackServerContext* context,
                                              const v1::GetAccountSummaryRequest* request,
                                              v1::AccountSummary* response) override;
  grpc::ServerUnaryReactor* ListAccountSummaries(
      grpc::CallbackServerContext* context, const v1::ListAccountSummariesRequest* request,
      v1::ListAccountSummariesResponse* response) override;
  grpc::ServerUnaryReactor* GetAccountReport(grpc::CallbackServerContext* context,
                                             const v1::GetAccountReportRequest* request,
                                             v1::AccountReport* response) override;
  grpc::ServerUnaryReactor* GetLedgerTotals(grpc::CallbackServerContext* context,
                                            const v1::GetLedgerTotalsRequest* request,
                                            v1::LedgerTotals* response) override;

  // Reads the answer from a build once it is readable and has applied the position asked for.
  // Runs at most once, on a gRPC thread or on the thread that applied the position.
  using ReadFn = absl::AnyInvocable<absl::Status(const ProjectionRunner&)>;

 private:
  // Answers the call: `checked` (the request's validation) first, then `read` from the build of
  // `projection` the request names, at once or once it has applied `min_position`.
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context, absl::Status checked,
                                  std::string_view projection, uint32_t version,
                                  uint64_t min_position, ReadFn read) const;

  const ProjectionEngine* const engine_;
  const storage::EventStore* const events_;
  ServingState* const serving_;
  const Authenticator* const auth_;
  const Clock* const clock_;
};

}  // namespace fidelis::server
