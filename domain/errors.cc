#include "domain/errors.h"

#include "absl/strings/cord.h"
#include "domain/strings.h"

namespace fidelis {

absl::Status InvalidField(std::string_view field, std::string_view message) {
  absl::Status status = absl::InvalidArgumentError(StrCat(field, ": ", message));
  status.SetPayload(kFieldPayloadKey, absl::Cord(std::string(field)));
  return status;
}

std::optional<std::string> FieldOf(const absl::Status& status) {
  auto payload = status.GetPayload(kFieldPayloadKey);
  if (!payload) return std::nullopt;
  return std::string(*payload);
}

absl::Status Annotate(const absl::Status& status, std::string_view prefix) {
  if (status.ok()) return status;
  absl::Status out(status.code(), StrCat(prefix, ": ", status.message()));
  status.ForEachPayload(
      [&out](absl::string_view key, const absl::Cord& value) { out.SetPayload(key, value); });
  return out;
}

}  // namespace fidelis
