// The gRPC adapters of the server: this folder owns everything that speaks gRPC, and nothing
// else does. Each service translates a request into calls of the write side (server/write/)
// or the read side (server/read/) and the result back; statuses become grpc::Status in one
// place (grpc_status.h). None of them owns what it calls: FidelisServer (server/server.h)
// owns the parts and outlives them.
//
//   account_commands_service.h   fidelis.v1.AccountCommands, from the table of commands
//   account_queries_service.h    fidelis.v1.AccountQueries
//   event_log_service.h          fidelis.v1.EventLog
//   projection_admin_service.h   fidelis.v1.ProjectionAdmin
//   stream_reactor.h             the shape of every server-streaming call
//   request_parsing.h            request bytes, answers and deadlines
//   auth.h, grpc_status.h, page_token.h, serving_state.h
//
// Dependencies point one way: api/ -> write/, read/ -> storage/, domain/.
#pragma once

#include "server/api/account_commands_service.h"
#include "server/api/account_queries_service.h"
#include "server/api/event_log_service.h"
#include "server/api/projection_admin_service.h"
#include "server/api/serving_state.h"
