#include "server/api/auth.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "domain/status_macros.h"
#include "domain/strings.h"

namespace fidelis::server {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Always walk the expected token's full length; fold in the length difference.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff |= x ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

absl::Status Authenticator::Check(const grpc::ServerContextBase& context, Scope scope) const {
  const std::string& expected = scope == Scope::kAdmin ? admin_token_ : client_token_;
  if (expected.empty()) return absl::OkStatus();
  const char* what = scope == Scope::kAdmin ? "an admin token" : "a client token";
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        StrCat("this RPC needs ", what, " in the 'authorization: Bearer <token>' metadata"));
  }
  std::string_view value(it->second.data(), it->second.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (value.size() < kBearer.size() || value.substr(0, kBearer.size()) != kBearer) {
    return absl::UnauthenticatedError("the authorization metadata must read 'Bearer <token>'");
  }
  if (!ConstantTimeEquals(value.substr(kBearer.size()), expected)) {
    return absl::PermissionDeniedError(StrCat("the token is not ", what));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileNamed(const std::string& path, std::string_view what) {
  std::ifstream in(path);
  if (!in) {
    const int error = errno;
    const std::string cannot = StrCat("cannot read ", what, " ", path);
    if (error == ENOENT) return absl::NotFoundError(StrCat(cannot, ": no such file"));
    if (error == EACCES || error == EPERM) {
      std::string detail;
      struct stat st {};
      if (stat(path.c_str(), &st) == 0) {
        detail = StrCat(" (owned by uid ", st.st_uid, ", mode ",
                        absl::StrFormat("%04o", st.st_mode & 07777), ")");
      }
      return absl::PermissionDeniedError(StrCat(cannot, detail, ": permission denied to uid ",
                                                geteuid(), ", the user fidelisd runs as"));
    }
    return absl::FailedPreconditionError(StrCat(cannot, ": ", std::strerror(error)));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::FailedPreconditionError(StrCat("cannot read ", what, " ", path));
  return buffer.str();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileNamed(path, "token file"));
  std::string token(absl::StripAsciiWhitespace(text));
  if (token.size() < 16) {
    return absl::InvalidArgumentError(
        StrCat("token file ", path, " must hold a token of at least 16 characters"));
  }
  return token;
}

}  // namespace fidelis::server
