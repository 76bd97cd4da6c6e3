// fidelisd's process: its command-line flags, turning them into ServerOptions, serving until
// SIGTERM or SIGINT, and shutting down gracefully. main.cc only calls RunDaemon; a test
// harness (tests/e2e/fidelisd_harness_main.cc) calls it with a hook that adds to the options,
// so the daemon's code runs under test too.
#pragma once

#include <functional>

#include "server/server.h"

namespace fidelis::server {

// Parses the flags (those defined in daemon.cc and any the binary defines), builds the
// options, lets `customize` (if set) change them, starts the server, prints
// "listening on <address>" on stdout, and serves until SIGTERM or SIGINT. Returns the exit
// code: 0 after a graceful stop, 1 when a flag is invalid or the server cannot start (with a
// log line saying why). Call once, from main, before any other thread starts.
int RunDaemon(int argc, char** argv,
              const std::function<void(ServerOptions&)>& customize = nullptr);

}  // namespace fidelis::server
