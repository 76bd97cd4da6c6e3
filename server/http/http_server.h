// HttpServer: fidelisd's HTTP listener (--http_listen), for what speaks HTTP rather than gRPC:
//
//   GET  /metrics        the Prometheus text exposition (server/server_metrics.h)
//   GET  /healthz        200 while the gRPC health service answers at all (the process is up)
//   GET  /readyz         200 when it answers SERVING, 503 otherwise (a cluster node catching up)
//   GET  /               the admin console: one page shipped in the binary (console.html)
//   GET  /api/projections, /api/rebuilds, /api/rebuilds/{id},
//        /api/projections/{name}/diff?a=live&b=shadow      reads, as JSON
//   POST /api/projections/{name}/rebuild  (body: a RebuildProjectionRequest as JSON, optional)
//   POST /api/projections/{name}/{promote|abort|rollback|retire}, /api/rebuilds/{id}/cancel
//   GET  /api/traffic    commands per second and their p99 latency, one point a second, for
//                        the last five minutes
//
// Every /api call is a gRPC call to this server's own ProjectionAdmin service over an
// in-process channel, so the rules, validation, authorisation and status codes are the gRPC
// API's and exist once. The caller's `Authorization: Bearer <token>` header travels as the
// call's metadata. A read without one is made with the client token when the listener is on
// loopback (reading stays open there); actions always need the caller's admin token when the
// server has one. A refusal is answered with the HTTP status that corresponds to the gRPC code
// and the body {"code": "PERMISSION_DENIED", "message": "..."}.
//
// Threads: cpp-httplib serves requests on its own pool; a sampler thread records the traffic
// points. Start() and the destructor are called by the owner only. The channel and the
// histogram must outlive the HttpServer.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/channel.h"
#include "server/metrics/metrics.h"

namespace httplib {
class Server;
}

namespace fidelis::server {

struct HttpServerOptions {
  // host:port; port 0 picks a free one.
  std::string listen_address = "127.0.0.1:8080";
  // Sent with reads that carry no token of their own (the owner sets the client token here
  // when the listener is on loopback, where reading stays open); empty: none.
  std::string read_token;
  // "fidelisd 0.9.0 (commit ...)", shown by the console.
  std::string version;
};

class HttpServer {
 public:
  // Binds and starts serving. `scrape` renders /metrics; `channel` reaches this server's gRPC
  // services in-process; `commands` is the latency histogram of every command (the traffic
  // chart). UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           std::function<std::string()> scrape,
                                                           std::shared_ptr<grpc::Channel> channel,
                                                           const metrics::Histogram* commands);
  ~HttpServer();  // Stops serving and joins its threads.

  int port() const { return port_; }

  // Stops accepting requests. Idempotent.
  void Stop();

 private:
  struct Point {
    double unix_seconds;
    double commands_per_second;
    double p99_seconds;
  };

  HttpServer(HttpServerOptions options, std::function<std::string()> scrape,
             std::shared_ptr<grpc::Channel> channel, const metrics::Histogram* commands);
  void Route();
  void Sample();
  std::string TrafficJson() const;

  const HttpServerOptions options_;
  const std::function<std::string()> scrape_;
  const std::shared_ptr<grpc::Channel> channel_;
  const metrics::Histogram* const commands_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
  std::thread listener_;
  std::thread sampler_;
  absl::Mutex mu_;
  absl::CondVar stop_cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  mutable absl::Mutex points_mu_;
  std::deque<Point> points_ ABSL_GUARDED_BY(points_mu_);
};

}  // namespace fidelis::server
