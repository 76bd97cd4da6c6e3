// Bearer-token authentication of calls.
//
// Two independent tokens: the admin token guards the RPCs that change projections (rebuild,
// cancel, and later promote, abort, rollback); the client token, when configured, guards every
// command, query and log RPC. A token travels in the `authorization` metadata as
// "Bearer <token>". A missing token is UNAUTHENTICATED and a wrong one PERMISSION_DENIED.
// Tokens are compared in constant time and never logged.
//
// Thread-safety: immutable after construction; Check may be called from any thread.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"

namespace fidelis::server {

enum class Scope { kClient, kAdmin };

class Authenticator {
 public:
  // An empty token disables that check (an empty admin token leaves admin RPCs open, which
  // the server allows only on a loopback address).
  Authenticator(std::string admin_token, std::string client_token)
      : admin_token_(std::move(admin_token)), client_token_(std::move(client_token)) {}

  absl::Status Check(const grpc::ServerContextBase& context, Scope scope) const;

  bool admin_protected() const { return !admin_token_.empty(); }
  bool client_protected() const { return !client_token_.empty(); }

 private:
  const std::string admin_token_;
  const std::string client_token_;
};

// Reads a token from a file, without surrounding white space. INVALID_ARGUMENT when the file
// is empty or the token is shorter than 16 characters; ReadFileNamed's errors when it cannot be
// read.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// The whole of a secret or configuration file, `what` naming it in errors ("TLS key"). An error
// says what went wrong: NOT_FOUND when there is no such file, PERMISSION_DENIED when this
// process's user may not read it (naming the file's owner and mode and the process's uid),
// FAILED_PRECONDITION otherwise.
absl::StatusOr<std::string> ReadFileNamed(const std::string& path, std::string_view what);

// Compares without an early exit, so the time taken does not reveal where they differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace fidelis::server
