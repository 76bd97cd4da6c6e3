#include "server/api/grpc_status.h"

#include "domain/errors.h"
#include "google/rpc/error_details.pb.h"

namespace fidelis::server {

google::rpc::Status ToRpcStatus(const absl::Status& status) {
  google::rpc::Status out;
  out.set_code(static_cast<int>(status.code()));
  out.set_message(std::string(status.message()));
  std::optional<std::string> field = FieldOf(status);
  if (!field) return out;
  google::rpc::BadRequest bad_request;
  auto* violation = bad_request.add_field_violations();
  violation->set_field(*field);
  // The message starts with "<field>: "; the violation names the field separately.
  std::string description(status.message());
  if (description.rfind(*field + ": ", 0) == 0) description.erase(0, field->size() + 2);
  violation->set_description(description);
  out.add_details()->PackFrom(bad_request);
  return out;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  if (!FieldOf(status)) return grpc::Status(code, message);
  return grpc::Status(code, message, ToRpcStatus(status).SerializeAsString());
}

}  // namespace fidelis::server
