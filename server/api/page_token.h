// Page tokens of ListAccountSummaries: opaque to clients, web-safe base64 of
// "1|<last key>|<checksum>". The checksum catches tampering and truncation; the version prefix
// lets the format change.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace fidelis::server {

// The token that continues after row key `last_key`.
std::string MakePageToken(std::string_view last_key);

// The row key a token continues after; empty for an empty token (the first page).
// INVALID_ARGUMENT on "page_token" for anything MakePageToken did not make.
absl::StatusOr<std::string> ParsePageToken(std::string_view token);

}  // namespace fidelis::server
