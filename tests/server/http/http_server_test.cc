// The HTTP listener of a real server: /metrics scraped and parsed strictly after real commands,
// queries and a rebuild; the health probes; the console's JSON API and its authorisation.
#include "server/http/http_server.h"

#include "domain/version.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "httplib.h"
#include "tests/server/metrics/exposition_parser.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

constexpr char kAdminToken[] = "admin-token-for-http-tests";

class HttpServerTest : public ServerTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    options.http_listen = "127.0.0.1:0";
    options.admin_token = kAdminToken;
  }

  httplib::Result Get(const std::string& path) {
    httplib::Client client("127.0.0.1", server_->http_port());
    return client.Get(path.c_str());
  }
  httplib::Result Post(const std::string& path, const std::string& body,
                       const std::string& token = kAdminToken) {
    httplib::Client client("127.0.0.1", server_->http_port());
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return client.Post(path.c_str(), headers, body, "application/json");
  }
  static google::protobuf::Struct Json(const std::string& body) {
    google::protobuf::Struct parsed;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(body, &parsed).ok()) << body;
    return parsed;
  }
  static std::string Field(const google::protobuf::Struct& s, const std::string& name) {
    auto it = s.fields().find(name);
    return it == s.fields().end() ? "" : it->second.string_value();
  }
  ParsedExposition Scrape() {
    auto res = Get("/metrics");
    EXPECT_TRUE(res && res->status == 200);
    if (!res) return {};
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    auto parsed = ParseExposition(res->body);
    EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << res->body;
    return parsed.ok() ? *parsed : ParsedExposition{};
  }
  // Waits for a rebuild started over HTTP to end; returns its last phase.
  std::string AwaitRebuild(const std::string& id) {
    for (int i = 0; i < 600; ++i) {
      auto res = Get("/api/rebuilds/" + id);
      if (res && res->status == 200) {
        const std::string phase =
            Field(Json(res->body).fields().at("progress").struct_value(), "phase");
        if (phase == "DONE" || phase == "FAILED" || phase == "CANCELLED") return phase;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return "timeout";
  }
};

double Delta(const ParsedExposition& after, const ParsedExposition& before, const std::string& name,
             std::vector<std::pair<std::string, std::string>> labels) {
  const double b = before.Get(name, labels);
  return after.Get(name, labels) - (std::isnan(b) ? 0 : b);
}

TEST_F(HttpServerTest, MetricsCountExactlyWhatWasDone) {
  const ParsedExposition before = Scrape();
  const uint64_t head_before = Head();
  std::vector<std::string> ids;
  for (const char* number : {"HTTP-1", "HTTP-2", "HTTP-3"}) ids.push_back(OpenOk(number, 1000));
  v1::CommandResult result;
  EXPECT_EQ(Open("HTTP-1", 0, &result).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  ASSERT_TRUE(Deposit(ids[0], 500, &result).ok());
  ASSERT_TRUE(Deposit(ids[1], 700, &result).ok());
  EXPECT_EQ(Withdraw(ids[2], 1'000'000, &result).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Deposit(ids[2], -5, &result).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  Summary(ids[0], Head());
  Summary(ids[1], Head());
  v1::GetAccountSummaryRequest unknown;
  unknown.set_account_id("00000000000000000000000000000000");
  v1::AccountSummary summary;
  EXPECT_EQ(queries_->GetAccountSummary(Ctx().get(), unknown, &summary).error_code(),
            grpc::StatusCode::NOT_FOUND);

  auto started = Post("/api/projections/AccountSummary/rebuild", R"({"mode":"IN_PLACE"})");
  ASSERT_TRUE(started && started->status == 200) << (started ? started->body : "no answer");
  const std::string rebuild_id = Field(Json(started->body), "rebuildId");
  ASSERT_FALSE(rebuild_id.empty());
  ASSERT_EQ(AwaitRebuild(rebuild_id), "DONE");
  Summary(ids[2], Head());  // The rebuilt projection is live again and caught up.

  const ParsedExposition after = Scrape();
  const uint64_t head = Head();
  EXPECT_EQ(
      Delta(after, before, "fidelis_commands_total", {{"method", "OpenAccount"}, {"code", "OK"}}),
      3);
  EXPECT_EQ(Delta(after, before, "fidelis_commands_total",
                  {{"method", "OpenAccount"}, {"code", "ALREADY_EXISTS"}}),
            1);
  EXPECT_EQ(
      Delta(after, before, "fidelis_commands_total", {{"method", "MakeDeposit"}, {"code", "OK"}}),
      2);
  EXPECT_EQ(Delta(after, before, "fidelis_commands_total",
                  {{"method", "MakeDeposit"}, {"code", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(Delta(after, before, "fidelis_commands_total",
                  {{"method", "MakeWithdrawal"}, {"code", "FAILED_PRECONDITION"}}),
            1);
  EXPECT_EQ(
      Delta(after, before, "fidelis_command_duration_seconds_count", {{"method", "OpenAccount"}}),
      4);
  EXPECT_EQ(Delta(after, before, "fidelis_command_duration_seconds_bucket",
                  {{"method", "MakeDeposit"}, {"le", "+Inf"}}),
            3);
  EXPECT_EQ(Delta(after, before, "fidelis_queries_total",
                  {{"method", "GetAccountSummary"}, {"code", "OK"}}),
            3);
  EXPECT_EQ(Delta(after, before, "fidelis_queries_total",
                  {{"method", "GetAccountSummary"}, {"code", "NOT_FOUND"}}),
            1);
  // Every event written went through one group commit or another.
  EXPECT_EQ(after.Get("fidelis_log_head_position"), static_cast<double>(head));
  EXPECT_EQ(Delta(after, before, "fidelis_group_commit_events_sum", {}),
            static_cast<double>(head - head_before));
  EXPECT_EQ(Delta(after, before, "fidelis_log_write_duration_seconds_count", {}),
            Delta(after, before, "fidelis_group_commit_appends_count", {}));
  EXPECT_EQ(after.Get("fidelis_append_refusals_total"), 0);
  EXPECT_EQ(after.Get("fidelis_append_queue_depth"), 0);

  const std::vector<std::pair<std::string, std::string>> rebuild = {
      {"rebuild_id", rebuild_id}, {"projection", "AccountSummary"}};
  auto with = [](auto labels, std::pair<std::string, std::string> extra) {
    labels.push_back(extra);
    return labels;
  };
  EXPECT_EQ(after.Get("fidelis_rebuild_phase", with(rebuild, {"phase", "DONE"})), 1);
  EXPECT_EQ(after.Get("fidelis_rebuild_events_processed", rebuild), static_cast<double>(head));
  EXPECT_EQ(after.Get("fidelis_rebuild_events_total", rebuild), static_cast<double>(head));
  const std::vector<std::pair<std::string, std::string>> live = {
      {"projection", "AccountSummary"}, {"build", "v1"}, {"role", "live"}};
  EXPECT_EQ(after.Get("fidelis_projection_checkpoint", live), static_cast<double>(head));
  EXPECT_EQ(after.Get("fidelis_projection_lag_events", live), 0);
  EXPECT_EQ(after.Get("fidelis_projection_lag_seconds", live), 0);
  EXPECT_EQ(after.Get("fidelis_projection_available", live), 1);
  // Applied by the tailing thread, then again by the rebuild from position 0.
  EXPECT_GE(after.Get("fidelis_projection_events_applied_total", live), static_cast<double>(head));
  // The console's reads are calls of the admin service, counted like any other.
  EXPECT_GE(
      Delta(after, before, "fidelis_admin_calls_total", {{"method", "GetRebuild"}, {"code", "OK"}}),
      1);
  EXPECT_EQ(after.Get("fidelis_build_info",
                      {{"version", std::string(Version())}, {"commit", std::string(GitCommit())}}),
            1);
  EXPECT_GT(after.Get("process_resident_memory_bytes"), 1e6);
  EXPECT_GT(after.Get("process_open_fds"), 3);
  EXPECT_GT(after.Get("fidelis_rocksdb_live_data_bytes", {{"db", "projections"}}), 0);
  EXPECT_EQ(after.Get("fidelis_rocksdb_write_stalls_total", {{"db", "log"}, {"kind", "stop"}}), 0);
  EXPECT_EQ(after.types.at("fidelis_command_duration_seconds"), "histogram");
  EXPECT_EQ(after.types.at("fidelis_commands_total"), "counter");
}

TEST_F(HttpServerTest, HealthProbesMirrorTheGrpcHealthService) {
  auto healthz = Get("/healthz");
  ASSERT_TRUE(healthz);
  EXPECT_EQ(healthz->status, 200);
  auto readyz = Get("/readyz");
  ASSERT_TRUE(readyz);
  EXPECT_EQ(readyz->status, 200);
  EXPECT_EQ(readyz->body, "SERVING\n");
}

TEST_F(HttpServerTest, ActionsNeedTheAdminTokenAndRefusalsNameTheirCause) {
  // Reads stay open on loopback.
  auto projections = Get("/api/projections");
  ASSERT_TRUE(projections);
  EXPECT_EQ(projections->status, 200);
  EXPECT_NE(projections->body.find("\"AccountSummary\""), std::string::npos);

  auto anonymous = Post("/api/projections/AccountSummary/rebuild", "{}", "");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(Field(Json(anonymous->body), "code"), "UNAUTHENTICATED");
  EXPECT_NE(Field(Json(anonymous->body), "message").find("admin token"), std::string::npos)
      << anonymous->body;

  auto wrong = Post("/api/projections/AccountSummary/promote", "", "not-the-admin-token-at-all");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 403);
  EXPECT_EQ(Field(Json(wrong->body), "code"), "PERMISSION_DENIED");

  auto bad_body = Post("/api/projections/AccountSummary/rebuild", R"({"mode":"SIDEWAYS"})");
  ASSERT_TRUE(bad_body);
  EXPECT_EQ(bad_body->status, 400);
  EXPECT_EQ(Field(Json(bad_body->body), "code"), "INVALID_ARGUMENT");
  EXPECT_NE(Field(Json(bad_body->body), "message").find("mode"), std::string::npos);

  auto unknown = Post("/api/projections/NoSuchProjection/rebuild", "{}");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404) << unknown->body;
  EXPECT_NE(Field(Json(unknown->body), "message").find("NoSuchProjection"), std::string::npos);

  auto no_shadow = Post("/api/projections/AccountSummary/promote", "");
  ASSERT_TRUE(no_shadow);
  EXPECT_EQ(no_shadow->status, 400) << no_shadow->body;
  EXPECT_EQ(Field(Json(no_shadow->body), "code"), "FAILED_PRECONDITION");

  auto nowhere = Get("/api/nowhere");
  ASSERT_TRUE(nowhere);
  EXPECT_EQ(nowhere->status, 404);
  EXPECT_EQ(Field(Json(nowhere->body), "code"), "NOT_FOUND");
}

TEST_F(HttpServerTest, TheConsoleIsOnePageFromTheBinary) {
  auto page = Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<title>Fidelis console</title>"), std::string::npos);
  // Nothing is fetched from elsewhere.
  EXPECT_EQ(page->body.find("http://"), std::string::npos);
  EXPECT_EQ(page->body.find("https://"), std::string::npos);
  auto traffic = Get("/api/traffic");
  ASSERT_TRUE(traffic);
  EXPECT_EQ(traffic->status, 200);
  EXPECT_TRUE(Json(traffic->body).fields().contains("points"));
}

TEST(HttpListenTest, BeyondLoopbackNeedsAnAdminToken) {
  TempDir dir;
  server::ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.http_listen = "0.0.0.0:0";
  options.data_dir = dir.Sub("data");
  auto refused = server::FidelisServer::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("0.0.0.0:0"), std::string::npos);
}

TEST(HttpListenTest, AnAddressWithoutAPortIsRefusedByName) {
  TempDir dir;
  server::ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.http_listen = "127.0.0.1";
  options.data_dir = dir.Sub("data");
  auto refused = server::FidelisServer::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("--http_listen: '127.0.0.1' is not host:port"),
            std::string::npos)
      << refused.status();
}

TEST(HttpListenTest, AnAddressInUseIsRefusedByName) {
  TempDir dir;
  httplib::Server holder;
  const int port = holder.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  server::ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.http_listen = "127.0.0.1:" + std::to_string(port);
  options.data_dir = dir.Sub("data");
  auto refused = server::FidelisServer::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find(options.http_listen), std::string::npos);
}

}  // namespace
}  // namespace fidelis::testing
