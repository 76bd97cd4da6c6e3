#include "clients/bench_driver.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "grpcpp/client_context.h"

namespace fidelis::clients {

FILE* trace_file = nullptr;

double Measurement::Percentile(double p) const {
  if (latencies_us.empty()) return 0;
  std::vector<double> sorted = latencies_us;
  size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p / 100.0 * sorted.size()));
  std::nth_element(sorted.begin(), sorted.begin() + index, sorted.end());
  return sorted[index];
}

void Print(const Measurement& m, bool json) {
  if (json) {
    std::printf(
        "{\"name\":\"%s\",\"offered_rate\":%.0f,\"seconds\":%.2f,\"ok\":%llu,\"failed\":%llu,"
        "\"commands_per_call\":%d,\"throughput\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f,"
        "\"p999_us\":%.0f}\n",
        m.name.c_str(), m.offered_rate, m.seconds, static_cast<unsigned long long>(m.ok),
        static_cast<unsigned long long>(m.failed), m.items_per_call, m.throughput(),
        m.Percentile(50), m.Percentile(99), m.Percentile(99.9));
  } else {
    std::printf(
        "%-28s %10s %10.0f/s %9.0f %9.0f %9.0f %8llu\n", m.name.c_str(),
        m.offered_rate > 0 ? std::to_string(static_cast<long>(m.offered_rate)).c_str() : "max",
        m.throughput(), m.Percentile(50), m.Percentile(99), m.Percentile(99.9),
        static_cast<unsigned long long>(m.failed));
  }
  std::fflush(stdout);
}

void PrintHeader(bool json) {
  if (!json) {
    std::printf("%-28s %10s %12s %9s %9s %9s %8s\n", "MEASUREMENT", "OFFERED", "THROUGHPUT",
                "P50(us)", "P99(us)", "P99.9(us)", "FAILED");
  }
}

Measurement Drive(const std::string& name, int concurrency, double rate, double seconds,
                  const Issuer& issue, uint64_t max_calls, const std::atomic<bool>* stop) {
  Measurement m;
  m.name = name;
  m.offered_rate = rate;
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  const auto start = Clock::now();
  const double wall_start =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  auto launch = [&](Clock::time_point intended) {
    issue([&, intended](bool ok) {
      const double us = std::chrono::duration<double, std::micro>(Clock::now() - intended).count();
      std::lock_guard<std::mutex> lock(mu);
      --in_flight;
      if (Clock::now() <= end) {
        if (ok) {
          ++m.ok;
          m.latencies_us.push_back(us);
          if (trace_file != nullptr) {
            std::fprintf(trace_file, "%.6f %.0f %s\n",
                         wall_start + std::chrono::duration<double>(intended - start).count(), us,
                         name.c_str());
          }
        } else {
          ++m.failed;
        }
      }
      cv.notify_all();
    });
  };
  uint64_t issued = 0;
  if (rate <= 0) {
    while (Clock::now() < end && (max_calls == 0 || issued++ < max_calls) &&
           !(stop && stop->load())) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < concurrency; });
      ++in_flight;
      lock.unlock();
      launch(Clock::now());
    }
  } else {
    const auto interval =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
    for (auto next = start; next < end && !(stop && stop->load()); next += interval) {
      std::this_thread::sleep_until(next);
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < concurrency; });
      ++in_flight;
      lock.unlock();
      launch(next);  // Latency counts from the intended send time (no coordinated omission).
    }
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return in_flight == 0; });
  m.seconds = std::min(seconds, std::chrono::duration<double>(Clock::now() - start).count());
  return m;
}

RebuildOutcome TimeRebuild(v1::ProjectionAdmin::Stub& admin,
                           const v1::RebuildProjectionRequest& request) {
  RebuildOutcome outcome;
  grpc::ClientContext context;
  const auto start = Clock::now();
  auto reader = admin.RebuildProjection(&context, request);
  v1::RebuildProgress progress;
  while (reader->Read(&progress)) {
  }
  grpc::Status status = reader->Finish();
  outcome.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  outcome.events = progress.result().events_processed();
  outcome.ok = status.ok() && progress.phase() == v1::DONE;
  outcome.error = status.ok() ? progress.result().failure() : status.error_message();
  return outcome;
}

namespace {

// Says on stderr why a call failed, for the first few failures of the run: a figure with
// failures is not one to publish, and the count alone does not say what went wrong.
void ReportFailure(const grpc::Status& status, int command = -1) {
  static std::atomic<int> reported{0};
  if (reported.fetch_add(1) >= 5) return;
  if (command >= 0) {
    std::fprintf(stderr, "fidelis-bench: command %d of a batch failed: %d: %s\n", command,
                 static_cast<int>(status.error_code()), status.error_message().c_str());
  } else {
    std::fprintf(stderr, "fidelis-bench: a call failed: %d: %s\n",
                 static_cast<int>(status.error_code()), status.error_message().c_str());
  }
}

// One call in flight and what it sends and receives.
struct Call {
  grpc::ClientContext context;
  v1::MakeDepositRequest deposit;
  v1::MakeWithdrawalRequest withdrawal;
  v1::CommandResult result;
  v1::PingRequest ping;
  v1::PingResponse pong;
  v1::ExecuteCommandsRequest batch;
  v1::ExecuteCommandsResponse outcomes;
  v1::GetAccountSummaryRequest query;
  v1::AccountSummary summary;
};

}  // namespace

std::string RunTag() {
  return std::to_string(std::chrono::system_clock::now().time_since_epoch().count() % 1000000000);
}

std::vector<std::string> OpenAccounts(v1::AccountCommands::Stub& stub, int count,
                                      const std::string& prefix) {
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) {
    v1::OpenAccountRequest request;
    request.set_account_number(prefix + std::to_string(i));
    request.set_holder_name("Bench");
    request.mutable_opening_deposit()->set_minor_units(1'000'000'000);
    request.mutable_opening_deposit()->set_currency("EUR");
    v1::CommandResult result;
    grpc::ClientContext context;
    grpc::Status status = stub.OpenAccount(&context, request, &result);
    if (!status.ok()) {
      std::fprintf(stderr, "opening accounts failed: %s\n", status.error_message().c_str());
      std::exit(1);
    }
    ids.push_back(result.account_id());
  }
  return ids;
}

Issuer PingIssuer(v1::AccountCommands::Stub& stub) {
  return [&stub](const std::function<void(bool)>& done) {
    auto* call = new Call;
    stub.async()->Ping(
        &call->context, &call->ping, &call->pong, [call, done](const grpc::Status& s) {
          delete call;  // Before done(): once the last call is done, the caller may exit.
          done(s.ok());
        });
  };
}

Issuer CommandIssuer(v1::AccountCommands::Stub& stub, const std::vector<std::string>& ids) {
  auto counter = std::make_shared<std::atomic<uint64_t>>(0);
  return [&stub, &ids, counter](const std::function<void(bool)>& done) {
    const uint64_t n = counter->fetch_add(1);
    auto* call = new Call;
    auto finish = [call, done](const grpc::Status& s) {
      if (!s.ok()) ReportFailure(s);
      delete call;  // Before done(): once the last call is done, the caller may exit.
      done(s.ok());
    };
    const std::string& id = ids[(n * 2654435761u) % ids.size()];
    if (n % 5 < 3) {
      call->deposit.set_account_id(id);
      call->deposit.mutable_amount()->set_minor_units(100 + n % 900);
      call->deposit.mutable_amount()->set_currency("EUR");
      stub.async()->MakeDeposit(&call->context, &call->deposit, &call->result, finish);
    } else {
      call->withdrawal.set_account_id(id);
      call->withdrawal.mutable_amount()->set_minor_units(50 + n % 500);
      call->withdrawal.mutable_amount()->set_currency("EUR");
      stub.async()->MakeWithdrawal(&call->context, &call->withdrawal, &call->result, finish);
    }
  };
}

Issuer BatchIssuer(v1::AccountCommands::Stub& stub, const std::vector<std::string>& ids, int size) {
  auto counter = std::make_shared<std::atomic<uint64_t>>(0);
  return [&stub, &ids, counter, size](const std::function<void(bool)>& done) {
    auto* call = new Call;
    for (int i = 0; i < size; ++i) {
      const uint64_t n = counter->fetch_add(1);
      v1::BatchCommand* command = call->batch.add_commands();
      v1::MakeDepositRequest* deposit = n % 5 < 3 ? command->mutable_make_deposit() : nullptr;
      v1::MakeWithdrawalRequest* withdrawal =
          deposit ? nullptr : command->mutable_make_withdrawal();
      const std::string& id = ids[(n * 2654435761u) % ids.size()];
      if (deposit) {
        deposit->set_account_id(id);
        deposit->mutable_amount()->set_minor_units(100 + n % 900);
        deposit->mutable_amount()->set_currency("EUR");
      } else {
        withdrawal->set_account_id(id);
        withdrawal->mutable_amount()->set_minor_units(50 + n % 500);
        withdrawal->mutable_amount()->set_currency("EUR");
      }
    }
    stub.async()->ExecuteCommands(
        &call->context, &call->batch, &call->outcomes, [call, done](const grpc::Status& s) {
          bool ok = s.ok();
          if (!ok) ReportFailure(s);
          for (int i = 0; i < call->outcomes.outcomes_size(); ++i) {
            const auto& status = call->outcomes.outcomes(i).status();
            if (status.code() != 0) {
              ok = false;
              ReportFailure(
                  grpc::Status(static_cast<grpc::StatusCode>(status.code()), status.message()), i);
            }
          }
          delete call;  // Before done(): once the last call is done, the caller may exit.
          done(ok);
        });
  };
}

Issuer QueryIssuer(v1::AccountQueries::Stub& stub, const std::vector<std::string>& ids) {
  auto counter = std::make_shared<std::atomic<uint64_t>>(0);
  return [&stub, &ids, counter](const std::function<void(bool)>& done) {
    const uint64_t n = counter->fetch_add(1);
    auto* call = new Call;
    call->query.set_account_id(ids[(n * 2654435761u) % ids.size()]);
    stub.async()->GetAccountSummary(&call->context, &call->query, &call->summary,
                                    [call, done](const grpc::Status& s) {
                                      delete call;  // Before done(), as above.
                                      done(s.ok());
                                    });
  };
}

}  // namespace fidelis::clients
