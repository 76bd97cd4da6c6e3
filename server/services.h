// The gRPC service adapters. They are thin: translate a request into domain or storage calls,
// translate the result back, and convert the status once (grpc_status.h).
//
// AccountCommands uses the callback API: a command is decided on the gRPC thread that received
// it, and answered from the event log's writer thread once its group is synced, so no thread
// sleeps per command while the WAL syncs. The other services use the synchronous API; each
// call runs on a gRPC thread and may block, for example on a projection catching up.
//
// None of them owns anything: the FidelisServer (server.h) owns the parts and outlives them.
#pragma once

#include <atomic>

#include "domain/event_registry.h"
#include "fidelis/v1/accounts.grpc.pb.h"
#include "fidelis/v1/admin.grpc.pb.h"
#include "fidelis/v1/event_log.grpc.pb.h"
#include "server/auth.h"
#include "server/command_handler.h"
#include "server/projection_engine.h"
#include "server/rebuild.h"
#include "storage/event_store.h"

namespace fidelis::server {

// Limits on query and read requests. Documented in the README.
inline constexpr int kMaxPageSize = 1000;
inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxReadCount = 1000;
inline constexpr int kMaxBatchCommands = 1000;

// The command methods are raw callback methods: each parses its request bytes itself, so that
// a request protobuf refuses (a proto3 string that is not UTF-8) is answered INVALID_ARGUMENT
// naming the field, where gRPC's typed callback handler would answer an empty UNIMPLEMENTED.
// Every method answers through the call's default reactor. The handler's callback may run on
// the event log's writer thread; it only serializes the response and finishes the call.
using AccountCommandsBase = v1::AccountCommands::WithRawCallbackMethod_OpenAccount<
    v1::AccountCommands::WithRawCallbackMethod_MakeDeposit<
        v1::AccountCommands::WithRawCallbackMethod_MakeWithdrawal<
            v1::AccountCommands::WithRawCallbackMethod_CloseAccount<
                v1::AccountCommands::WithRawCallbackMethod_TransferFunds<
                    v1::AccountCommands::WithRawCallbackMethod_ExecuteCommands<
                        v1::AccountCommands::WithRawCallbackMethod_Ping<
                            v1::AccountCommands::Service>>>>>>>;

class AccountCommandsService final : public AccountCommandsBase {
 public:
  AccountCommandsService(CommandHandler* handler, const Authenticator* auth)
      : handler_(handler), auth_(auth) {}

  grpc::ServerUnaryReactor* OpenAccount(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* MakeDeposit(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* MakeWithdrawal(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* CloseAccount(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* TransferFunds(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  // Runs each command of the batch as its method above would (see CommandBatch in the .cc).
  grpc::ServerUnaryReactor* ExecuteCommands(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  // The no-op baseline of the benchmarks, served the same way as the commands.
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;

 private:
  CommandHandler* const handler_;
  const Authenticator* const auth_;
};

class AccountQueriesService final : public v1::AccountQueries::Service {
 public:
  AccountQueriesService(const ProjectionEngine* engine, const Authenticator* auth)
      : engine_(engine), auth_(auth) {}

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
  const ProjectionEngine* const engine_;
  const Authenticator* const auth_;
};

class EventLogService final : public v1::EventLog::Service {
 public:
  // `stopping` turns true when the server shuts down; subscriptions then end.
  EventLogService(const storage::EventStore* store, const EventRegistry* registry,
                  const std::atomic<bool>* stopping, const Authenticator* auth)
      : store_(store), registry_(registry), stopping_(stopping), auth_(auth) {}

  grpc::Status ReadStream(grpc::ServerContext* context, const v1::ReadStreamRequest* request,
                          v1::ReadStreamResponse* response) override;
  grpc::Status ReadAll(grpc::ServerContext* context, const v1::ReadAllRequest* request,
                       v1::ReadAllResponse* response) override;
  grpc::Status SubscribeAll(grpc::ServerContext* context, const v1::SubscribeAllRequest* request,
                            grpc::ServerWriter<v1::RecordedEvent>* writer) override;

 private:
  const storage::EventStore* const store_;
  const EventRegistry* const registry_;
  const std::atomic<bool>* const stopping_;
  const Authenticator* const auth_;
};

class ProjectionAdminService : public v1::ProjectionAdmin::Service {
 public:
  ProjectionAdminService(ProjectionEngine* engine, const storage::EventStore* store,
                         RebuildManager* rebuilds, const std::atomic<bool>* stopping,
                         const Authenticator* auth)
      : engine_(engine), store_(store), rebuilds_(rebuilds), stopping_(stopping), auth_(auth) {}

  grpc::Status ListProjections(grpc::ServerContext* context,
                               const v1::ListProjectionsRequest* request,
                               v1::ListProjectionsResponse* response) override;
  grpc::Status RebuildProjection(grpc::ServerContext* context,
                                 const v1::RebuildProjectionRequest* request,
                                 grpc::ServerWriter<v1::RebuildProgress>* writer) override;
  grpc::Status WatchRebuild(grpc::ServerContext* context, const v1::WatchRebuildRequest* request,
                            grpc::ServerWriter<v1::RebuildProgress>* writer) override;
  grpc::Status GetRebuild(grpc::ServerContext* context, const v1::GetRebuildRequest* request,
                          v1::RebuildInfo* response) override;
  grpc::Status ListRebuilds(grpc::ServerContext* context, const v1::ListRebuildsRequest* request,
                            v1::ListRebuildsResponse* response) override;
  grpc::Status CancelRebuild(grpc::ServerContext* context, const v1::CancelRebuildRequest* request,
                             v1::RebuildInfo* response) override;
  grpc::Status PromoteProjection(grpc::ServerContext* context,
                                 const v1::PromoteProjectionRequest* request,
                                 v1::ProjectionInfo* response) override;
  grpc::Status AbortRebuild(grpc::ServerContext* context, const v1::AbortRebuildRequest* request,
                            v1::ProjectionInfo* response) override;
  grpc::Status RollbackProjection(grpc::ServerContext* context,
                                  const v1::RollbackProjectionRequest* request,
                                  v1::ProjectionInfo* response) override;
  grpc::Status RetireProjection(grpc::ServerContext* context,
                                const v1::RetireProjectionRequest* request,
                                v1::ProjectionInfo* response) override;
  grpc::Status DiffProjection(grpc::ServerContext* context,
                              const v1::DiffProjectionRequest* request,
                              v1::DiffProjectionResponse* response) override;

 private:
  // The projection's state after an admin operation.
  grpc::Status Describe(std::string_view projection, v1::ProjectionInfo* response) const;
  // Streams a job's progress until it ends, the caller goes away, or the server stops: every
  // phase change, and otherwise at most ten and at least one message a second.
  grpc::Status StreamProgress(grpc::ServerContext* context, const RebuildJob& job,
                              grpc::ServerWriter<v1::RebuildProgress>* writer);

  ProjectionEngine* const engine_;
  const storage::EventStore* const store_;
  RebuildManager* const rebuilds_;
  const std::atomic<bool>* const stopping_;
  const Authenticator* const auth_;
};

// Converts a stored event to its API form, decoding the payload as stored.
v1::RecordedEvent ToRecordedEvent(const v1::StoredEvent& event, const EventRegistry& registry);

// The deadline of a call as absl::Time, capped at `cap` from now.
absl::Time CallDeadline(const grpc::ServerContextBase& context, absl::Duration cap);

}  // namespace fidelis::server
