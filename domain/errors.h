// Error helpers shared by every layer. A validation error names the request field at fault;
// the name travels as an absl::Status payload and becomes google.rpc.BadRequest at the gRPC
// boundary (server/grpc_status.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace fidelis {

// The payload key under which InvalidField stores the field name.
inline constexpr char kFieldPayloadKey[] = "fidelis.field";

// INVALID_ARGUMENT whose message is "<field>: <message>" and which carries `field`.
absl::Status InvalidField(std::string_view field, std::string_view message);

// The field named by an InvalidField status, if any.
std::optional<std::string> FieldOf(const absl::Status& status);

// Returns `status` with `prefix` put before its message, keeping code and payloads.
absl::Status Annotate(const absl::Status& status, std::string_view prefix);

}  // namespace fidelis
