// End to end: `fidelis-seed` writes a history, the real fidelisd serves it, and the real CLI
// rebuilds projections in place and blue-green, on a pipe and on a pseudo-terminal, and
// drives diff, promote, rollback, retire and abort.
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>

#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace fidelis::testing {
namespace {

const std::string kServer = FIDELISD_PATH;
const std::string kCli = FIDELIS_CLI_PATH;
const std::string kSeed = FIDELIS_SEED_PATH;

class RebuildCliTest : public ::testing::Test {
 protected:
  void SetUp() override { StartWith({}); }

  void StartWith(std::vector<std::string> flags) {
    RunResult seeded =
        testing::Run({kSeed, "--data_dir=" + dir_.Sub("data"), "--seed=5", "--accounts=300",
                      "--events=30000", "--v1_fraction=0.2", "--unknown_events=3"});
    ASSERT_EQ(seeded.exit_code, 0) << seeded.output;
    ASSERT_NE(seeded.output.find("wrote 30000 events"), std::string::npos) << seeded.output;
    std::vector<std::string> argv = {kServer, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
                                     "--data_dir=" + dir_.Sub("data"), "--log_level=error"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    server_ = std::make_unique<Child>(argv);
    const std::string line = server_->ReadLine();
    ASSERT_EQ(line.rfind("listening on ", 0), 0u) << line;
    address_ = line.substr(13);
  }

  RunResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {kCli, "--server", address_});
    return testing::Run(args);
  }

  // Runs the CLI on a pseudo-terminal and returns everything it wrote.
  std::string CliOnTty(std::vector<std::string> args, int* exit_code) {
    args.insert(args.begin(), {kCli, "--server", address_});
    int master = -1;
    pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
    if (pid == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    std::string output;
    char buf[4096];
    ssize_t n;
    while ((n = read(master, buf, sizeof(buf))) > 0) output.append(buf, n);
    int status = 0;
    waitpid(pid, &status, 0);
    close(master);
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return output;
  }

  TempDir dir_;
  std::unique_ptr<Child> server_;
  std::string address_;
};

TEST_F(RebuildCliTest, OnAPipeItPrintsPlainLinesAndASummary) {
  RunResult r = Cli(
      {"projection", "rebuild", "--projection=AccountReport", "--batch-size=1000", "--in-place"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find('\r'), std::string::npos);
  EXPECT_EQ(r.output.find('\x1b'), std::string::npos);
  for (const char* phase : {"PREPARING", "TRUNCATING", "REPLAYING", "CATCHING_UP", "DONE"}) {
    EXPECT_NE(r.output.find(phase), std::string::npos) << phase;
  }
  EXPECT_EQ(r.output.find("PROMOTING"), std::string::npos);
  EXPECT_NE(r.output.find("Rebuilt projection 'AccountReport': 30,000 events processed, 3 "
                          "skipped."),
            std::string::npos)
      << r.output;

  RunResult strict = Cli({"projection", "rebuild", "--projection=AccountReport", "--strict"});
  EXPECT_EQ(strict.exit_code, 1);  // Skipped events are an error under --strict.

  RunResult all = Cli({"projection", "rebuild"});
  EXPECT_EQ(all.exit_code, 0);
  EXPECT_NE(all.output.find("Rebuilt projection 'AccountSummary'"), std::string::npos);
  EXPECT_NE(all.output.find("Rebuilt 3 projection(s), 90,000 total events processed."),
            std::string::npos)
      << all.output;

  RunResult failed =
      Cli({"projection", "rebuild", "--projection=AccountSummary", "--unknown-events=fail"});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.output.find("Rebuild of projection 'AccountSummary' failed"), std::string::npos)
      << failed.output;

  RunResult status = Cli({"projection", "status"});
  EXPECT_EQ(status.exit_code, 0);
  std::smatch id;
  ASSERT_TRUE(std::regex_search(status.output, id, std::regex("rb-[0-9a-f]{12}")));
  RunResult watched = Cli({"projection", "watch", id.str()});
  EXPECT_NE(watched.output.find("Rebuil"), std::string::npos) << watched.output;
}

class BlueGreenCliTest : public RebuildCliTest {
 protected:
  // AccountReport starts at v1, so the binary's v2 calls for a rebuild.
  void SetUp() override { StartWith({"--initial_projection_versions=AccountReport=1"}); }
};

TEST_F(BlueGreenCliTest, NoPromoteDiffPromoteRollbackRetireAndAbort) {
  RunResult list = Cli({"projection", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(std::regex_search(list.output, std::regex("AccountReport +live +v1 ")))
      << list.output;
  EXPECT_NE(list.output.find("rebuild needed: the newest version is v2"), std::string::npos);

  RunResult built =
      Cli({"projection", "rebuild", "--projection=AccountReport", "--blue-green", "--no-promote"});
  EXPECT_EQ(built.exit_code, 0) << built.output;
  EXPECT_EQ(built.output.find("TRUNCATING"), std::string::npos) << built.output;
  EXPECT_NE(built.output.find("Shadow build v2 of projection 'AccountReport' is ready: 30,000 "
                              "events processed, 3 skipped."),
            std::string::npos)
      << built.output;
  list = Cli({"projection", "list"});
  EXPECT_TRUE(std::regex_search(list.output, std::regex("AccountReport +shadow +v2 +30000 +0 ")))
      << list.output;

  // v2 adds monthly totals and the largest deposit: every account's row differs in them.
  RunResult diff = Cli({"projection", "diff", "AccountReport", "live", "shadow", "--max=2"});
  EXPECT_EQ(diff.exit_code, 1) << diff.output;
  EXPECT_TRUE(std::regex_search(diff.output, std::regex("a +v1 +300\n"))) << diff.output;
  EXPECT_TRUE(std::regex_search(diff.output, std::regex("b +v2 +300\n"))) << diff.output;
  EXPECT_NE(diff.output.find("differing rows: 300 (only in a: 0, only in b: 0)"), std::string::npos)
      << diff.output;
  EXPECT_NE(diff.output.find("added: months[0]"), std::string::npos) << diff.output;
  EXPECT_NE(diff.output.find("298 more"), std::string::npos) << diff.output;

  RunResult promoted = Cli({"projection", "promote", "AccountReport"});
  EXPECT_EQ(promoted.exit_code, 0) << promoted.output;
  EXPECT_TRUE(std::regex_search(promoted.output, std::regex("live +v2 ")));
  EXPECT_TRUE(std::regex_search(promoted.output, std::regex("previous +v1 +30000 ")))
      << promoted.output;
  EXPECT_EQ(promoted.output.find("rebuild needed"), std::string::npos) << promoted.output;

  RunResult rolled = Cli({"projection", "rollback", "AccountReport"});
  EXPECT_EQ(rolled.exit_code, 0) << rolled.output;
  EXPECT_TRUE(std::regex_search(rolled.output, std::regex("live +v1 "))) << rolled.output;
  EXPECT_TRUE(std::regex_search(rolled.output, std::regex("previous +v2 "))) << rolled.output;

  RunResult retired = Cli({"projection", "retire", "AccountReport"});
  EXPECT_EQ(retired.exit_code, 0) << retired.output;
  EXPECT_EQ(retired.output.find("previous"), std::string::npos) << retired.output;

  RunResult nothing = Cli({"projection", "abort", "AccountReport"});
  EXPECT_EQ(nothing.exit_code, 1);  // FAILED_PRECONDITION: there is no shadow to drop.

  // The same version beside itself: a new generation, identical to the one it replaces.
  RunResult again = Cli({"projection", "rebuild", "--projection=AccountSummary"});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("PROMOTING"), std::string::npos) << again.output;
  EXPECT_NE(again.output.find("Build v1.1 of 'AccountSummary' is live"), std::string::npos)
      << again.output;
  RunResult same = Cli({"projection", "diff", "AccountSummary", "live", "previous"});
  EXPECT_EQ(same.exit_code, 0) << same.output;
  EXPECT_NE(same.output.find("differing rows: 0"), std::string::npos) << same.output;
}

TEST_F(RebuildCliTest, OnATerminalItDrawsAProgressBar) {
  int exit_code = -1;
  const std::string out = CliOnTty({"projection", "rebuild", "--projection=AccountSummary",
                                    "--batch-size=500", "--max-rate=20000"},
                                   &exit_code);
  EXPECT_EQ(exit_code, 0) << out;
  EXPECT_NE(out.find('\r'), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("\\[#+\\.*\\] +[0-9.]+%"))) << out;
  EXPECT_NE(out.find("ev/s"), std::string::npos);
  EXPECT_NE(out.find("ETA"), std::string::npos);
  EXPECT_NE(out.find("Rebuilt projection 'AccountSummary': 30,000 events processed, 3 skipped."),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace fidelis::testing
