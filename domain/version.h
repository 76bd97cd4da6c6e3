// The build's identity: Fidelis's version and the git commit it was built from. fidelisd and
// the fidelis CLI print them for --version; the server's log line at start names them too.
#pragma once

#include <string>

namespace fidelis {

// The release version, from CMakeLists.txt's project(VERSION), e.g. "0.9.0".
const char* Version();

// The commit the binary was built from (12 hex digits, "-dirty" when the checkout had
// uncommitted changes), or "unknown" outside a git checkout. Read at build time.
const char* GitCommit();

// "<program> <version> (commit <commit>)", the --version line.
std::string VersionLine(const char* program);

}  // namespace fidelis
