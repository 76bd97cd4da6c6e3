// The one place where absl::Status becomes grpc::Status. Codes map one to one (they are the
// same canonical codes); an INVALID_ARGUMENT that names a field (domain/errors.h) gains a
// google.rpc.BadRequest detail, so clients such as grpcurl show the offending field.
#pragma once

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/support/status.h"

namespace fidelis::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

// The same status as a google.rpc.Status message (code, message and the BadRequest detail),
// for answers that carry a status per item, such as ExecuteCommands.
google::rpc::Status ToRpcStatus(const absl::Status& status);

}  // namespace fidelis::server
