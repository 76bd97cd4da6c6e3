#include "server/grpc_status.h"

#include "domain/errors.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace fidelis::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  std::optional<std::string> field = FieldOf(status);
  if (!field) return grpc::Status(code, message);
  google::rpc::BadRequest bad_request;
  auto* violation = bad_request.add_field_violations();
  violation->set_field(*field);
  // The message starts with "<field>: "; the violation names the field separately.
  std::string description = message;
  if (description.rfind(*field + ": ", 0) == 0) description.erase(0, field->size() + 2);
  violation->set_description(description);
  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  details.add_details()->PackFrom(bad_request);
  return grpc::Status(code, message, details.SerializeAsString());
}

}  // namespace fidelis::server
