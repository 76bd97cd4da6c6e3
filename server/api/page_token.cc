#include "server/api/page_token.h"

#include <cstdint>

#include "absl/strings/escaping.h"
#include "domain/account.h"
#include "domain/errors.h"
#include "domain/strings.h"

namespace fidelis::server {
namespace {

uint32_t TokenChecksum(std::string_view data) {
  uint32_t h = 2166136261u;
  for (unsigned char c : data) h = (h ^ c) * 16777619u;
  return h;
}

}  // namespace

std::string MakePageToken(std::string_view last_key) {
  std::string body = StrCat("1|", last_key);
  return absl::WebSafeBase64Escape(StrCat(body, "|", TokenChecksum(body)));
}

absl::StatusOr<std::string> ParsePageToken(std::string_view token) {
  if (token.empty()) return std::string();
  std::string decoded;
  auto bad = [] {
    return InvalidField("page_token", "is not a token returned by ListAccountSummaries");
  };
  if (token.size() > 256 || !absl::WebSafeBase64Unescape(ToAbsl(token), &decoded)) return bad();
  size_t last_bar = decoded.rfind('|');
  if (last_bar == std::string::npos || decoded.compare(0, 2, "1|") != 0) return bad();
  std::string body = decoded.substr(0, last_bar);
  if (decoded.substr(last_bar + 1) != StrCat(TokenChecksum(body))) return bad();
  std::string key = body.substr(2);
  if (!ValidateAccountId("page_token", key).ok()) return bad();
  return key;
}

}  // namespace fidelis::server
