#include "server/http/http_server.h"

#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "domain/strings.h"
#include "fidelis/v1/admin.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "httplib.h"

namespace fidelis::server {

// The console page (console.html), compiled in by server/http/CMakeLists.txt.
extern const char kConsoleHtml[];

namespace {

constexpr size_t kTrafficPoints = 300;  // Five minutes, one a second.
constexpr auto kCallTimeout = std::chrono::seconds(30);

// The HTTP status a gRPC code corresponds to (as Google's HTTP APIs map them).
int HttpStatus(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

std::string CodeName(grpc::StatusCode code) {
  // gRPC's codes are absl's, number for number.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string JsonString(const std::string& text) {
  std::string out;
  AppendJsonString(text, &out);
  return out;
}

void Refuse(httplib::Response& res, grpc::StatusCode code, const std::string& message) {
  res.status = HttpStatus(code);
  res.set_content(absl::StrCat("{\"code\":", JsonString(CodeName(code)),
                               ",\"message\":", JsonString(message), "}\n"),
                  "application/json");
}

void Answer(httplib::Response& res, const grpc::Status& status,
            const google::protobuf::Message& message) {
  if (!status.ok()) return Refuse(res, status.error_code(), status.error_message());
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.always_print_enums_as_ints = false;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) {
    return Refuse(res, grpc::StatusCode::INTERNAL, "the answer could not be written as JSON");
  }
  res.set_content(json + "\n", "application/json");
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, std::function<std::string()> scrape,
                       std::shared_ptr<grpc::Channel> channel, const metrics::Histogram* commands)
    : options_(std::move(options)),
      scrape_(std::move(scrape)),
      channel_(std::move(channel)),
      commands_(commands),
      http_(std::make_unique<httplib::Server>()) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    HttpServerOptions options, std::function<std::string()> scrape,
    std::shared_ptr<grpc::Channel> channel, const metrics::Histogram* commands) {
  const std::string address = options.listen_address;
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_listen: '", address, "' is not host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<HttpServer> server(
      new HttpServer(std::move(options), std::move(scrape), std::move(channel), commands));
  server->Route();
  // SO_REUSEADDR only: cpp-httplib's default, SO_REUSEPORT, would let a second server bind the
  // same port and take half its requests.
  server->http_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  if (port == 0) {
    server->port_ = server->http_->bind_to_any_port(host);
  } else if (server->http_->bind_to_port(host, port)) {
    server->port_ = port;
  }
  if (server->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", address,
                                               " (--http_listen): the address is in use or "
                                               "not this machine's"));
  }
  HttpServer* raw = server.get();
  server->listener_ = std::thread([raw] { raw->http_->listen_after_bind(); });
  // stop() before the listener runs would be lost: wait until it does.
  for (int i = 0; i < 1000 && !server->http_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (commands != nullptr) server->sampler_ = std::thread([raw] { raw->Sample(); });
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    stop_cv_.SignalAll();
  }
  http_->stop();
  if (listener_.joinable()) listener_.join();
  if (sampler_.joinable()) sampler_.join();
}

void HttpServer::Sample() {
  metrics::HistogramSample last = commands_->Snapshot();
  auto last_time = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    stop_cv_.WaitWithTimeout(&mu_, absl::Seconds(1));
    if (stopping_) break;
    const metrics::HistogramSample now = commands_->Snapshot();
    const auto now_time = std::chrono::steady_clock::now();
    const metrics::HistogramSample delta = metrics::Difference(now, last);
    const double seconds = std::chrono::duration<double>(now_time - last_time).count();
    last = now;
    last_time = now_time;
    absl::MutexLock points_lock(&points_mu_);
    points_.push_back({absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()),
                       seconds > 0 ? static_cast<double>(delta.count) / seconds : 0,
                       metrics::Quantile(delta, 0.99)});
    while (points_.size() > kTrafficPoints) points_.pop_front();
  }
}

std::string HttpServer::TrafficJson() const {
  absl::MutexLock lock(&points_mu_);
  std::string json = "{\"points\":[";
  for (size_t i = 0; i < points_.size(); ++i) {
    const Point& p = points_[i];
    absl::StrAppend(&json, i ? "," : "", "{\"t\":", static_cast<int64_t>(p.unix_seconds),
                    ",\"commandsPerSecond\":", p.commands_per_second,
                    ",\"p99Ms\":", p.p99_seconds * 1000, "}");
  }
  return json + "]}\n";
}

void HttpServer::Route() {
  // A gRPC call's context: a deadline, and the caller's token (or, for reads on loopback, the
  // client token).
  auto context = [this](const httplib::Request& req, bool read) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    std::string authorization = req.get_header_value("Authorization");
    if (authorization.empty() && read && !options_.read_token.empty()) {
      authorization = "Bearer " + options_.read_token;
    }
    if (!authorization.empty()) ctx->AddMetadata("authorization", authorization);
    return ctx;
  };
  auto admin = [this] { return v1::ProjectionAdmin::NewStub(channel_); };

  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(scrape_(), "text/plain; version=0.0.4; charset=utf-8");
  });
  auto health = [this](bool ready) {
    return [this, ready](const httplib::Request&, httplib::Response& res) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      grpc::health::v1::HealthCheckRequest request;
      grpc::health::v1::HealthCheckResponse response;
      const grpc::Status status =
          grpc::health::v1::Health::NewStub(channel_)->Check(&ctx, request, &response);
      const bool serving =
          status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
      const bool ok = ready ? serving : status.ok();
      res.status = ok ? 200 : 503;
      res.set_content(ok ? (serving ? "SERVING\n" : "NOT_SERVING\n")
                         : (status.ok() ? "NOT_SERVING\n" : status.error_message() + "\n"),
                      "text/plain");
    };
  };
  http_->Get("/healthz", health(false));
  http_->Get("/readyz", health(true));
  http_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                   "img-src 'self' data:");
    res.set_content(kConsoleHtml, "text/html; charset=utf-8");
  });
  http_->Get("/api/info", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(absl::StrCat("{\"version\":", JsonString(options_.version), "}\n"),
                    "application/json");
  });
  http_->Get("/api/traffic", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(TrafficJson(), "application/json");
  });
  http_->Get("/api/projections", [=](const httplib::Request& req, httplib::Response& res) {
    v1::ListProjectionsResponse response;
    auto ctx = context(req, true);
    Answer(res, admin()->ListProjections(ctx.get(), {}, &response), response);
  });
  http_->Get("/api/rebuilds", [=](const httplib::Request& req, httplib::Response& res) {
    v1::ListRebuildsResponse response;
    auto ctx = context(req, true);
    Answer(res, admin()->ListRebuilds(ctx.get(), {}, &response), response);
  });
  http_->Get(R"(/api/rebuilds/([^/]+))", [=](const httplib::Request& req, httplib::Response& res) {
    v1::GetRebuildRequest request;
    request.set_rebuild_id(req.matches[1]);
    v1::RebuildInfo response;
    auto ctx = context(req, true);
    Answer(res, admin()->GetRebuild(ctx.get(), request, &response), response);
  });
  http_->Get(R"(/api/projections/([^/]+)/diff)",
             [=](const httplib::Request& req, httplib::Response& res) {
               v1::DiffProjectionRequest request;
               request.set_projection(req.matches[1]);
               request.set_a(req.has_param("a") ? req.get_param_value("a") : "live");
               request.set_b(req.has_param("b") ? req.get_param_value("b") : "shadow");
               if (req.has_param("max")) {
                 int max = 0;
                 if (!absl::SimpleAtoi(req.get_param_value("max"), &max)) {
                   return Refuse(res, grpc::StatusCode::INVALID_ARGUMENT, "max: not a number");
                 }
                 request.set_max_differences(max);
               }
               v1::DiffProjectionResponse response;
               auto ctx = context(req, true);
               Answer(res, admin()->DiffProjection(ctx.get(), request, &response), response);
             });
  http_->Post(R"(/api/projections/([^/]+)/rebuild)",
              [=](const httplib::Request& req, httplib::Response& res) {
                v1::RebuildProjectionRequest request;
                if (!req.body.empty()) {
                  auto parsed = google::protobuf::util::JsonStringToMessage(req.body, &request);
                  if (!parsed.ok()) {
                    return Refuse(res, grpc::StatusCode::INVALID_ARGUMENT,
                                  absl::StrCat("request body: ", parsed.message().as_string()));
                  }
                }
                request.set_projection(req.matches[1]);
                // The job runs on the server whether or not this call stays: take the first
                // progress message (its id), then leave.
                auto ctx = context(req, false);
                auto stub = admin();
                auto reader = stub->RebuildProjection(ctx.get(), request);
                v1::RebuildProgress first;
                if (reader->Read(&first)) {
                  ctx->TryCancel();
                  reader->Finish().ok();
                  Answer(res, grpc::Status::OK, first);
                  return;
                }
                Answer(res, reader->Finish(), first);
              });
  http_->Post(R"(/api/rebuilds/([^/]+)/cancel)",
              [=](const httplib::Request& req, httplib::Response& res) {
                v1::CancelRebuildRequest request;
                request.set_rebuild_id(req.matches[1]);
                v1::RebuildInfo response;
                auto ctx = context(req, false);
                Answer(res, admin()->CancelRebuild(ctx.get(), request, &response), response);
              });
  http_->Post(R"(/api/projections/([^/]+)/(promote|abort|rollback|retire))",
              [=](const httplib::Request& req, httplib::Response& res) {
                const std::string projection = req.matches[1];
                const std::string action = req.matches[2];
                v1::ProjectionInfo response;
                auto ctx = context(req, false);
                auto stub = admin();
                grpc::Status status;
                if (action == "promote") {
                  v1::PromoteProjectionRequest request;
                  request.set_projection(projection);
                  status = stub->PromoteProjection(ctx.get(), request, &response);
                } else if (action == "abort") {
                  v1::AbortRebuildRequest request;
                  request.set_projection(projection);
                  status = stub->AbortRebuild(ctx.get(), request, &response);
                } else if (action == "rollback") {
                  v1::RollbackProjectionRequest request;
                  request.set_projection(projection);
                  status = stub->RollbackProjection(ctx.get(), request, &response);
                } else {
                  v1::RetireProjectionRequest request;
                  request.set_projection(projection);
                  status = stub->RetireProjection(ctx.get(), request, &response);
                }
                Answer(res, status, response);
              });
  http_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      Refuse(res, grpc::StatusCode::NOT_FOUND,
             absl::StrCat("no ", req.method, " ", req.path, " here"));
    } else if (res.status == 400) {
      Refuse(res, grpc::StatusCode::INVALID_ARGUMENT,
             "the request could not be read (a POST needs a Content-Length, even 0)");
    } else if (res.status == 405) {
      Refuse(res, grpc::StatusCode::UNIMPLEMENTED,
             absl::StrCat(req.method, " is not served on ", req.path));
    } else if (res.status >= 400) {
      Refuse(res, grpc::StatusCode::UNKNOWN, absl::StrCat("HTTP status ", res.status));
    }
  });
}

}  // namespace fidelis::server
