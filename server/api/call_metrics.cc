#include "server/api/call_metrics.h"

#include <array>
#include <atomic>
#include <chrono>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace fidelis::server {

using grpc::experimental::InterceptionHookPoints;
using metrics::Counter;
using metrics::Family;
using metrics::Histogram;

namespace {

constexpr int kCodes = 17;  // OK to UNAUTHENTICATED.

// One method's series, resolved once: what a call then does is add and observe.
class MethodMetrics {
 public:
  MethodMetrics(Family<Counter>* calls, std::string method, Histogram* seconds, Histogram* all)
      : calls_(calls), method_(std::move(method)), seconds_(seconds), all_(all) {}

  void Record(grpc::StatusCode code, double seconds) {
    const int i = static_cast<int>(code) >= 0 && static_cast<int>(code) < kCodes
                      ? static_cast<int>(code)
                      : static_cast<int>(grpc::StatusCode::UNKNOWN);
    Counter* counter = counters_[i].load(std::memory_order_acquire);
    if (counter == nullptr) {
      // First call with this code: the series is made (a racing call finds the same one).
      counter = calls_->With({method_, absl::StatusCodeToString(static_cast<absl::StatusCode>(i))});
      counters_[i].store(counter, std::memory_order_release);
    }
    counter->Increment();
    if (seconds_ != nullptr) seconds_->Observe(seconds);
    if (all_ != nullptr) all_->Observe(seconds);
  }

 private:
  Family<Counter>* const calls_;
  const std::string method_;
  Histogram* const seconds_;
  Histogram* const all_;
  std::array<std::atomic<Counter*>, kCodes> counters_{};
};

class CallInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit CallInterceptor(MethodMetrics* metrics)
      : metrics_(metrics), started_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->Record(
          methods->GetSendStatus().error_code(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    }
    methods->Proceed();
  }

 private:
  MethodMetrics* const metrics_;
  const std::chrono::steady_clock::time_point started_;
};

}  // namespace

class CallMetricsFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallMetricsFactory(const CallMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // "/fidelis.v1.AccountCommands/OpenAccount"
    constexpr absl::string_view kPrefix = "/fidelis.v1.";
    const absl::string_view full = info->method();
    if (!absl::StartsWith(full, kPrefix)) return nullptr;
    absl::MutexLock lock(&mu_);
    auto it = methods_.find(full);
    if (it == methods_.end()) {
      it = methods_.emplace(std::string(full), Resolve(full.substr(kPrefix.size()))).first;
    }
    return it->second ? new CallInterceptor(it->second.get()) : nullptr;
  }

 private:
  // The series of "Service/Method"; null for a service that is not counted.
  std::unique_ptr<MethodMetrics> Resolve(absl::string_view path) const {
    const size_t slash = path.find('/');
    if (slash == absl::string_view::npos) return nullptr;
    const absl::string_view service = path.substr(0, slash);
    const std::string method(path.substr(slash + 1));
    if (service == "AccountCommands") {
      // Ping is counted by method, but it changes nothing: the traffic chart leaves it out.
      return std::make_unique<MethodMetrics>(
          metrics_->commands_, method, metrics_->command_seconds_->With({method}),
          method == "Ping" ? nullptr : metrics_->all_commands_.get());
    }
    if (service == "AccountQueries" || service == "EventLog") {
      return std::make_unique<MethodMetrics>(metrics_->queries_, method,
                                             metrics_->query_seconds_->With({method}), nullptr);
    }
    if (service == "ProjectionAdmin") {
      return std::make_unique<MethodMetrics>(metrics_->admin_, method, nullptr, nullptr);
    }
    return nullptr;
  }

  const CallMetrics* const metrics_;
  absl::Mutex mu_;
  // By full method path, "/fidelis.v1.AccountCommands/OpenAccount".
  absl::flat_hash_map<std::string, std::unique_ptr<MethodMetrics>> methods_ ABSL_GUARDED_BY(mu_);
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
