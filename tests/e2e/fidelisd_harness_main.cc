// fidelisd-harness: fidelisd (the same daemon code, server/daemon.h) with the test hooks the
// shipped binary does not have, for end-to-end tests that must catch the server at a given
// point. Built with the tests only.
//
//   --pause_rebuild_at=PHASE   rebuild jobs stop at PHASE (REPLAYING, CATCHING_UP, PROMOTING)
//                              until cancelled or killed, printing "paused at PHASE" to stderr.
#include <string>

#include "absl/flags/flag.h"
#include "server/daemon.h"
#include "spdlog/spdlog.h"
#include "tests/server/pause_at_phase.h"

ABSL_FLAG(std::string, pause_rebuild_at, "",
          "Test hook: rebuild jobs stop at this phase until cancelled or killed.");

int main(int argc, char** argv) {
  fidelis::testing::PauseAtPhase pause;
  return fidelis::server::RunDaemon(argc, argv, [&](fidelis::server::ServerOptions& options) {
    const std::string phase = absl::GetFlag(FLAGS_pause_rebuild_at);
    fidelis::v1::RebuildPhase parsed;
    if (!phase.empty() && fidelis::v1::RebuildPhase_Parse(phase, &parsed)) {
      pause.Set(parsed);
    } else if (!phase.empty()) {
      spdlog::error("--pause_rebuild_at: {} is no rebuild phase", phase);
    }
    options.rebuild_observer = &pause;
  });
}
