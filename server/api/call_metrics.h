// Counts every call of the Fidelis services by method and status code, and times it, through
// a server interceptor: the services themselves know nothing of metrics.
//
//   fidelis_commands_total{method,code}      AccountCommands
//   fidelis_command_duration_seconds{method}
//   fidelis_queries_total{method,code}       AccountQueries and EventLog
//   fidelis_query_duration_seconds{method}
//   fidelis_admin_calls_total{method,code}   ProjectionAdmin
//
// The code is the canonical name (OK, ABORTED, ...). A streaming call is counted and timed
// when it ends. The health and reflection services are not counted.
//
// Ownership and threads: the registry is not owned and must outlive the CallMetrics, which
// must outlive the gRPC server it is installed in. gRPC calls the factory and the interceptors
// on its own threads; everything here is thread-safe.
#pragma once

#include <memory>

#include "grpcpp/support/server_interceptor.h"
#include "server/metrics/metrics.h"

namespace fidelis::server {

class CallMetrics {
 public:
  explicit CallMetrics(metrics::Registry* registry);

  // For ServerBuilder::experimental().SetInterceptorCreators().
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewFactory();

  // The histogram of every command's latency, all methods but Ping together (the console's
  // chart).
  metrics::Histogram* all_commands() const { return all_commands_.get(); }

 private:
  friend class CallMetricsFactory;
  metrics::Family<metrics::Counter>* const commands_;
  metrics::Family<metrics::Histogram>* const command_seconds_;
  metrics::Family<metrics::Counter>* const queries_;
  metrics::Family<metrics::Histogram>* const query_seconds_;
  metrics::Family<metrics::Counter>* const admin_;
  const std::unique_ptr<metrics::Histogram> all_commands_;
};

}  // namespace fidelis::server
