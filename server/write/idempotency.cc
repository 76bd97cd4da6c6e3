#include "server/write/idempotency.h"

#include "domain/account.h"
#include "domain/errors.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fidelis::server {

std::string Fingerprint(std::string_view method,
                        const google::protobuf::Message& request_without_options) {
  std::string out(method);
  out.push_back('\0');
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    request_without_options.SerializeToCodedStream(&coded);
    coded.Trim();
  }
  return out;
}

absl::Status ValidateContext(const CommandContext& context) {
  RETURN_IF_ERROR(ValidateText("options.command_id", context.command_id, kMaxIdLength, false));
  RETURN_IF_ERROR(
      ValidateText("options.correlation_id", context.correlation_id, kMaxIdLength, false));
  RETURN_IF_ERROR(ValidateText("options.causation_id", context.causation_id, kMaxIdLength, false));
  if (context.expected_version && *context.expected_version < 0) {
    return InvalidField("options.expected_version",
                        StrCat("must not be negative, got ", *context.expected_version));
  }
  return absl::OkStatus();
}

void StampAppend(const CommandContext& context, storage::AppendRequest& request) {
  request.command_id = context.command_id;
  request.fingerprint = context.fingerprint;
}

absl::Status MapAppendError(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kAlreadyExists) {
    return InvalidField("options.command_id",
                        "was already used for a different request; use a new command_id");
  }
  return status;
}

absl::StatusOr<std::optional<storage::AppendResult>> FindEarlier(const storage::EventStore& store,
                                                                 const CommandContext& context) {
  if (context.command_id.empty()) return std::nullopt;
  ASSIGN_OR_RETURN(std::optional<v1::CommandRecord> record, store.FindCommand(context.command_id));
  if (!record) return std::nullopt;
  if (record->fingerprint() != context.fingerprint) {
    return MapAppendError(absl::AlreadyExistsError("command_id reused"));
  }
  storage::AppendResult result;
  result.first_position = record->first_position();
  result.last_position = record->last_position();
  result.streams.assign(record->streams().begin(), record->streams().end());
  result.deduplicated = true;
  return result;
}

}  // namespace fidelis::server
