// Request parsing and call plumbing shared by the gRPC adapters: decoding a request from its
// bytes with a status that names the field at fault, serializing an answer, and a call's
// deadline.
//
// The command methods parse their request bytes themselves (raw callback methods), so that a
// request protobuf refuses (a proto3 string that is not UTF-8) is answered INVALID_ARGUMENT
// naming the field, where gRPC's generated handler would answer an empty UNIMPLEMENTED.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"

namespace fidelis::server {

// Parses `raw` into `request`. INVALID_ARGUMENT naming the first string field that is not
// UTF-8 ("commands[2].make_deposit.reference"), or naming the message the bytes should have
// been when they are no such message at all.
absl::Status ParseRequest(const grpc::ByteBuffer& raw, google::protobuf::Message& request);

// The dotted path of the first string field in `bytes`, a serialized `descriptor` message, that
// is not UTF-8 (with the index of each repeated field on the way, as in "commands[2].holder_name");
// empty when there is none or the bytes do not parse that far.
std::string FirstNonUtf8Field(const std::string& bytes,
                              const google::protobuf::Descriptor* descriptor);

// Serializes `response` into `out` and finishes the call OK (INTERNAL if it cannot be
// serialized).
void Reply(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* out,
           const google::protobuf::Message& response);

// The deadline of a call on the timeline of `now` (the injected clock's reading), capped at
// `cap` from now. gRPC keeps deadlines on the system clock; what is left of one carries over.
absl::Time CallDeadline(const grpc::ServerContextBase& context, absl::Duration cap, absl::Time now);

}  // namespace fidelis::server
