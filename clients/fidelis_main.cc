// fidelis: the command-line client of a Fidelis server.
//
//   fidelis [--server host:port] [--json] account open|deposit|withdraw|close|transfer|batch|
//                                                 get|list
//   fidelis events read|tail
//   fidelis projection list|rebuild|status|watch|cancel|promote|abort|rollback|retire|diff
//
// Readable output by default; --json prints the server's response as JSON (one object per
// line for streams). Exit status 0 on success, 1 when the server rejected the call, 2 on
// usage errors. The subcommands are in cli_account.cc, cli_events.cc and cli_projection.cc.
#include <cstdio>
#include <exception>

#include "clients/cli.h"
#include "domain/version.h"

namespace {

int Main(int argc, char** argv) {
  CLI::App app{"fidelis: command-line client for the Fidelis account service"};
  app.require_subcommand(1);
  app.set_version_flag("--version", fidelis::VersionLine("fidelis"));
  fidelis::clients::Cli cli;
  cli.AddGlobalOptions(app);
  fidelis::clients::AddAccountCommands(app, cli);
  fidelis::clients::AddEventCommands(app, cli);
  fidelis::clients::AddProjectionCommands(app, cli);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!cli.run) return fidelis::clients::Usage("unknown command");
  return cli.run();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
