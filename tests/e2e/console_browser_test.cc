// The admin console in a real browser: headless Chromium (Debian's chromium, which
// .ci/install-deps installs) loads the page from a real fidelisd, and the test clicks its
// buttons and reads what the page shows, over the DevTools protocol on a pipe
// (--remote-debugging-pipe: NUL-terminated JSON messages on file descriptors 3 and 4).
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/test_util.h"

extern char** environ;

namespace fidelis::testing {
namespace {

const std::string kServer = FIDELISD_PATH;
const std::string kSeed = FIDELIS_SEED_PATH;
constexpr char kAdminToken[] = "console-admin-token-0123456789";

std::string FindChromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

// A headless Chromium driven over the DevTools protocol. One page, one session.
class Browser {
 public:
  explicit Browser(const std::string& user_data_dir) {
    const std::string chromium = FindChromium();
    if (chromium.empty()) return;
    int to_browser[2];
    int from_browser[2];
    if (pipe(to_browser) != 0 || pipe(from_browser) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_browser[0], 3);
    posix_spawn_file_actions_adddup2(&actions, from_browser[1], 4);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    std::vector<std::string> argv = {chromium,
                                     "--headless",
                                     "--no-sandbox",  // CI runs as root.
                                     "--disable-gpu",
                                     "--disable-dev-shm-usage",
                                     "--no-first-run",
                                     "--no-default-browser-check",
                                     "--remote-debugging-pipe",
                                     "--user-data-dir=" + user_data_dir,
                                     "about:blank"};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    close(to_browser[0]);
    close(from_browser[1]);
    write_fd_ = to_browser[1];
    read_fd_ = from_browser[0];
  }
  ~Browser() {
    if (write_fd_ >= 0) close(write_fd_);
    if (read_fd_ >= 0) close(read_fd_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return pid_ > 0; }

  // Sends a command and returns its result; on an error or a timeout, a failure is recorded
  // and an empty Struct returned.
  google::protobuf::Struct Call(const std::string& method, const std::string& params_json,
                                bool in_session = true) {
    const int id = ++next_id_;
    std::string message =
        absl::StrCat("{\"id\":", id, ",\"method\":\"", method, "\",\"params\":", params_json);
    if (in_session && !session_.empty())
      absl::StrAppend(&message, ",\"sessionId\":\"", session_, "\"");
    message += "}";
    message.push_back('\0');
    if (write(write_fd_, message.data(), message.size()) != static_cast<ssize_t>(message.size())) {
      ADD_FAILURE() << "cannot write to the browser";
      return {};
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      std::string reply;
      if (!ReadMessage(deadline, &reply)) break;
      google::protobuf::Struct parsed;
      if (!google::protobuf::util::JsonStringToMessage(reply, &parsed).ok()) continue;
      auto it = parsed.fields().find("id");
      if (it == parsed.fields().end() || it->second.number_value() != id) continue;  // An event.
      if (parsed.fields().contains("error")) {
        ADD_FAILURE() << method << ": " << reply;
        return {};
      }
      return parsed.fields().at("result").struct_value();
    }
    ADD_FAILURE() << method << ": no answer from the browser";
    return {};
  }

  // Opens `url` in a new page and attaches to it.
  bool Open(const std::string& url) {
    google::protobuf::Struct target =
        Call("Target.createTarget", absl::StrCat("{\"url\":\"", url, "\"}"), false);
    if (!target.fields().contains("targetId")) return false;
    google::protobuf::Struct attached =
        Call("Target.attachToTarget",
             absl::StrCat("{\"targetId\":\"", target.fields().at("targetId").string_value(),
                          "\",\"flatten\":true}"),
             false);
    if (!attached.fields().contains("sessionId")) return false;
    session_ = attached.fields().at("sessionId").string_value();
    Call("Emulation.setDeviceMetricsOverride",
         R"({"width":1280,"height":900,"deviceScaleFactor":1,"mobile":false})");
    return true;
  }

  // Evaluates a JavaScript expression in the page; its value as a string ("" when undefined).
  std::string Eval(const std::string& expression) {
    std::string quoted = "\"";
    for (char c : expression) {
      if (c == '"' || c == '\\') quoted += '\\';
      if (c == '\n') {
        quoted += "\\n";
        continue;
      }
      quoted += c;
    }
    quoted += "\"";
    google::protobuf::Struct result = Call(
        "Runtime.evaluate",
        absl::StrCat("{\"expression\":", quoted, ",\"returnByValue\":true,\"awaitPromise\":true}"));
    auto it = result.fields().find("result");
    if (it == result.fields().end()) return "";
    const auto& value = it->second.struct_value().fields();
    auto v = value.find("value");
    if (v == value.end()) return "";
    if (v->second.has_string_value()) return v->second.string_value();
    if (v->second.has_bool_value()) return v->second.bool_value() ? "true" : "false";
    if (v->second.has_number_value()) return absl::StrCat(v->second.number_value());
    return "";
  }

  // Evaluates `expression` every 100 ms until it returns `want` or `timeout` passes; returns
  // the last value.
  std::string WaitFor(const std::string& expression, const std::string& want,
                      absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    std::string value;
    while (absl::Now() < deadline) {
      value = Eval(expression);
      if (value == want) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return value;
  }

  // Evaluates `expression` every 100 ms until it returns something other than "", or
  // `timeout` passes.
  std::string WaitForAny(const std::string& expression, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    std::string value;
    while (value.empty() && absl::Now() < deadline) {
      value = Eval(expression);
      if (value.empty()) absl::SleepFor(absl::Milliseconds(100));
    }
    return value;
  }

  bool Screenshot(const std::string& path) {
    google::protobuf::Struct shot = Call("Page.captureScreenshot", R"({"format":"png"})");
    if (!shot.fields().contains("data")) return false;
    std::string png;
    if (!absl::Base64Unescape(shot.fields().at("data").string_value(), &png)) return false;
    std::ofstream(path, std::ios::binary) << png;
    return png.size() > 1000;
  }

 private:
  bool ReadMessage(absl::Time deadline, std::string* message) {
    while (true) {
      const size_t end = buffer_.find('\0');
      if (end != std::string::npos) {
        *message = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return true;
      }
      const int wait_ms =
          static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
      pollfd p{read_fd_, POLLIN, 0};
      if (poll(&p, 1, wait_ms) <= 0) return false;
      char chunk[65536];
      const ssize_t n = read(read_fd_, chunk, sizeof(chunk));
      if (n <= 0) return false;
      buffer_.append(chunk, n);
    }
  }

  pid_t pid_ = -1;
  int write_fd_ = -1;
  int read_fd_ = -1;
  int next_id_ = 0;
  std::string session_;
  std::string buffer_;
};

class ConsoleBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(FindChromium().empty())
        << "chromium is not installed: bash .ci/install-deps installs it";
    RunResult seeded = testing::Run(
        {kSeed, "--data_dir=" + dir_.Sub("data"), "--seed=11", "--accounts=200", "--events=20000"});
    ASSERT_EQ(seeded.exit_code, 0) << seeded.output;
    const std::string token_file = dir_.Sub("admin.token");
    std::ofstream(token_file) << kAdminToken << "\n";
    server_ = std::make_unique<Child>(std::vector<std::string>{
        kServer, "--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
        "--data_dir=" + dir_.Sub("data"), "--admin_token_file=" + token_file, "--log_level=warn"});
    ASSERT_EQ(server_->ReadLine().rfind("listening on ", 0), 0u);
    const std::string http = server_->ReadLine();
    ASSERT_EQ(http.rfind("http on ", 0), 0u) << http;
    url_ = http.substr(8) + "/";
    browser_ = std::make_unique<Browser>(dir_.Sub("chromium"));
    ASSERT_TRUE(browser_->started());
    ASSERT_TRUE(browser_->Open(url_));
    // The page has read the projections: their buttons are there.
    ASSERT_EQ(browser_->WaitFor(RebuildButton() + " !== null", "true", absl::Seconds(30)), "true");
  }

  void TearDown() override {
    browser_.reset();
    if (server_) {
      server_->Signal(SIGTERM);
      server_->WaitFor(10000);
    }
  }

  static std::string RebuildButton() {
    return "document.querySelector('button[data-action=\"rebuild-in-place\"]"
           "[data-projection=\"AccountSummary\"]')";
  }

  TempDir dir_;
  std::unique_ptr<Child> server_;
  std::unique_ptr<Browser> browser_;
  std::string url_;
};

TEST_F(ConsoleBrowserTest, ARebuildClickedInTheConsoleRunsToDoneWithItsBarAt100Percent) {
  // Paste the token once: the page keeps it in session storage.
  browser_->Eval(absl::StrCat("document.getElementById('token').value = '", kAdminToken,
                              "'; document.getElementById('save-token').click(); true"));
  EXPECT_EQ(browser_->Eval("sessionStorage.getItem('fidelis-admin-token')"), kAdminToken);
  browser_->Eval(RebuildButton() + ".click(); true");

  const std::string row = "document.querySelector('#rebuilds tr.rebuild')";
  const std::string state = "(() => { const r = " + row +
                            "; return r ? r.querySelector('.percent').textContent + ' ' + "
                            "r.querySelector('.phase').textContent : 'no row'; })()";
  EXPECT_EQ(browser_->WaitFor(state, "100% DONE", absl::Seconds(120)), "100% DONE");
  EXPECT_EQ(browser_->Eval(row + ".children[1].textContent"), "AccountSummary");
  EXPECT_EQ(browser_->Eval(row + ".querySelector('.bar > div').style.width"), "100%");
  EXPECT_EQ(browser_->Eval(row + ".children[4].textContent"), "20000 / 20000");
  EXPECT_EQ(browser_->Eval("document.getElementById('message').className"), "ok");
  // The projection is live again, caught up with the log.
  EXPECT_EQ(browser_->WaitFor("(() => { const r = document.querySelector("
                              "'#projections tr[data-projection=\"AccountSummary\"]'); "
                              "return r ? r.children[5].textContent : ''; })()",
                              "live", absl::Seconds(30)),
            "live");
  const std::string screenshot = std::string(CONSOLE_SCREENSHOT_DIR) + "/console.png";
  EXPECT_TRUE(browser_->Screenshot(screenshot)) << screenshot;
  std::printf("screenshot: %s\n", screenshot.c_str());
}

TEST_F(ConsoleBrowserTest, AClickWithoutTheTokenIsRefusedAndThePageSaysWhy) {
  browser_->Eval(RebuildButton() + ".click(); true");
  const std::string error_text =
      "(() => { const m = document.getElementById('message'); return m.className === 'error' "
      "? m.textContent : ''; })()";
  const std::string message = browser_->WaitForAny(error_text, absl::Seconds(10));
  EXPECT_NE(message.find("Rebuild AccountSummary refused: UNAUTHENTICATED"), std::string::npos)
      << message;
  EXPECT_NE(message.find("admin token"), std::string::npos) << message;
  // Nothing started.
  EXPECT_EQ(browser_->Eval("fetch('/api/rebuilds').then(r => r.json())"
                           ".then(j => String((j.rebuilds || []).length))"),
            "0");
  // A wrong token is refused too, as PERMISSION_DENIED.
  browser_->Eval(
      "sessionStorage.setItem('fidelis-admin-token', 'wrong-token-wrong-token'); "
      "document.getElementById('message').className = ''; true");
  browser_->Eval(RebuildButton() + ".click(); true");
  const std::string denied = browser_->WaitForAny(error_text, absl::Seconds(10));
  EXPECT_NE(denied.find("PERMISSION_DENIED"), std::string::npos) << denied;
}

}  // namespace
}  // namespace fidelis::testing
