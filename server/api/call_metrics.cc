#include "server/api/call_metrics.h"

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace fidelis::server {

using grpc::experimental::InterceptionHookPoints;
using metrics::Counter;
using metrics::Family;
using metrics::Histogram;

namespace {

class CallInterceptor : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(Family<Counter>* calls, std::string method, Histogram* seconds, Histogram* all)
      : calls_(calls),
        method_(std::move(method)),
        seconds_(seconds),
        all_(all),
        started_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      calls_
          ->With({method_, absl::StatusCodeToString(static_cast<absl::StatusCode>(
                               methods->GetSendStatus().error_code()))})
          ->Increment();
      if (seconds_ != nullptr) seconds_->Observe(seconds);
      if (all_ != nullptr) all_->Observe(seconds);
    }
    methods->Proceed();
  }

 private:
  Family<Counter>* const calls_;
  const std::string method_;
  Histogram* const seconds_;
  Histogram* const all_;
  const std::chrono::steady_clock::time_point started_;
};

}  // namespace

class CallMetricsFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallMetricsFactory(const CallMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // "/fidelis.v1.AccountCommands/OpenAccount"
    const std::string full = info->method();
    const size_t slash = full.rfind('/');
    if (full.rfind("/fidelis.v1.", 0) != 0 || slash == std::string::npos) return nullptr;
    const std::string service = full.substr(12, slash - 12);
    std::string method = full.substr(slash + 1);
    if (service == "AccountCommands") {
      // Ping is counted by method, but it changes nothing: the traffic chart leaves it out.
      return new CallInterceptor(metrics_->commands_, method,
                                 metrics_->command_seconds_->With({method}),
                                 method == "Ping" ? nullptr : metrics_->all_commands_.get());
    }
    if (service == "AccountQueries" || service == "EventLog") {
      return new CallInterceptor(metrics_->queries_, method,
                                 metrics_->query_seconds_->With({method}), nullptr);
    }
    if (service == "ProjectionAdmin") {
      return new CallInterceptor(metrics_->admin_, method, nullptr, nullptr);
    }
    return nullptr;
  }

 private:
  const CallMetrics* const metrics_;
};

CallMetrics::CallMetrics(metrics::Registry* registry)
    : commands_(registry->AddCounter("fidelis_commands_total",
                                     "Calls of the AccountCommands service, by status code.",
                                     {"method", "code"})),
      command_seconds_(registry->AddHistogram(
          "fidelis_command_duration_seconds",
          "Time from a command's arrival to its answer, durable write included.", {"method"},
          metrics::LatencyBuckets())),
      queries_(registry->AddCounter("fidelis_queries_total",
                                    "Calls of the AccountQueries and EventLog services, by "
                                    "status code.",
                                    {"method", "code"})),
      query_seconds_(registry->AddHistogram("fidelis_query_duration_seconds",
                                            "Time from a query's arrival to its answer.",
                                            {"method"}, metrics::LatencyBuckets())),
      admin_(registry->AddCounter("fidelis_admin_calls_total",
                                  "Calls of the ProjectionAdmin service, by status code.",
                                  {"method", "code"})),
      all_commands_(std::make_unique<Histogram>(metrics::LatencyBuckets())) {}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> CallMetrics::NewFactory() {
  return std::make_unique<CallMetricsFactory>(this);
}

}  // namespace fidelis::server
