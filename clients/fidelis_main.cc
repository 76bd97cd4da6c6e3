// fidelis: the command-line client of a Fidelis server.
//
//   fidelis [--server host:port] [--json] account
//   open|deposit|withdraw|close|transfer|batch|get|list fidelis events read|tail fidelis projection
//   list|rebuild|status|watch|cancel|promote|abort|rollback|retire|diff
//
// Readable output by default; --json prints the server's response as JSON (one object per
// line for streams). Exit status 0 on success, 1 when the server rejected the call, 2 on
// usage errors.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "clients/client_util.h"
#include "clients/rebuild_view.h"
#include "fidelis/v1/accounts.grpc.pb.h"
#include "fidelis/v1/admin.grpc.pb.h"
#include "fidelis/v1/event_log.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/client_context.h"

namespace fidelis::clients {
namespace {

using google::protobuf::util::TimeUtil;

struct Globals {
  std::string server = "127.0.0.1:50051";
  std::string token;
  std::string token_file;
  ConnectOptions tls;
  bool json = false;
  double timeout_seconds = 30;
  std::string command_id;
  int64_t expected_version = -1;
  std::string correlation_id;
};

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return "{}";
  return out;
}

void Prepare(grpc::ClientContext& context, const Globals& g) {
  if (!g.token.empty()) context.AddMetadata("authorization", "Bearer " + g.token);
  if (g.timeout_seconds > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(static_cast<int64_t>(g.timeout_seconds * 1000)));
  }
}

void FillOptions(v1::CommandOptions* options, const Globals& g) {
  if (g.expected_version >= 0) options->set_expected_version(g.expected_version);
  options->set_command_id(g.command_id);
  options->set_correlation_id(g.correlation_id);
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 2;
}

int PrintCommandResult(const grpc::Status& status, const v1::CommandResult& result,
                       const Globals& g, const std::string& what) {
  if (!status.ok()) return ReportStatus(status);
  if (g.json) {
    std::cout << ToJson(result) << "\n";
  } else {
    std::cout << what << " account " << result.account_id() << " (stream version "
              << result.stream_version() << ", global position " << result.global_position()
              << (result.deduplicated() ? ", deduplicated retry" : "") << ")\n";
  }
  return 0;
}

void PrintSummary(const v1::AccountSummary& s) {
  const std::string& currency = s.balance().currency();
  std::cout << "account " << s.account_id() << "\n"
            << "  number:        " << s.account_number() << "\n"
            << "  holder:        " << s.holder_name() << "\n"
            << "  balance:       " << FormatAmount(s.balance().minor_units(), currency) << " "
            << currency << "\n"
            << "  transactions:  " << s.transaction_count() << "\n"
            << "  last activity: "
            << (s.has_last_transaction_time() ? TimeUtil::ToString(s.last_transaction_time()) : "-")
            << "\n"
            << "  status:        " << v1::AccountStatus_Name(s.status()).substr(15) << "\n";
}

std::string DescribeEvent(const v1::RecordedEvent& e) {
  std::string line = std::to_string(e.global_position()) + "  " + e.stream_id() + "@" +
                     std::to_string(e.stream_version()) + "  " + e.type() + " v" +
                     std::to_string(e.schema_version()) + "  " + TimeUtil::ToString(e.timestamp());
  return line;
}

}  // namespace

// One line per build of a projection: live, then shadow and previous when there are any.
void PrintBuilds(const v1::ProjectionInfo& p) {
  auto line = [&](const char* role, const v1::ProjectionBuild& b) {
    std::string state = b.state();
    if (!b.rebuild_id().empty() && state.find(b.rebuild_id()) == std::string::npos) {
      state += " (" + b.rebuild_id() + ")";
    }
    std::printf("%-16s  %-8s  %-6s  %12llu  %12llu  %s\n", p.name().c_str(), role,
                b.build().c_str(), static_cast<unsigned long long>(b.checkpoint()),
                static_cast<unsigned long long>(b.lag()), state.c_str());
  };
  line("live", p.live());
  if (p.has_shadow()) line("shadow", p.shadow());
  if (p.has_previous()) {
    v1::ProjectionBuild previous = p.previous();
    previous.set_state(previous.state() + ", kept until " +
                       TimeUtil::ToString(previous.retire_at()).substr(0, 19) + "Z");
    line("previous", previous);
  }
  if (p.rebuild_needed()) {
    std::printf("%-16s  %-8s  %-6s  rebuild needed: the newest version is v%u\n", "", "", "",
                p.newest_version());
  }
}

// The result of DiffProjection as a table, then the differing rows.
void PrintDiff(const std::string& name, const v1::DiffProjectionResponse& r) {
  std::printf("%s at global position %llu\n", name.c_str(),
              static_cast<unsigned long long>(r.checkpoint()));
  std::printf("  %-10s  %-8s  %10s\n", "", "BUILD", "ROWS");
  std::printf("  %-10s  %-8s  %10llu\n", "a", r.a().build().c_str(),
              static_cast<unsigned long long>(r.a().rows()));
  std::printf("  %-10s  %-8s  %10llu\n", "b", r.b().build().c_str(),
              static_cast<unsigned long long>(r.b().rows()));
  std::printf("  differing rows: %llu (only in a: %llu, only in b: %llu)\n",
              static_cast<unsigned long long>(r.differing_rows()),
              static_cast<unsigned long long>(r.only_in_a()),
              static_cast<unsigned long long>(r.only_in_b()));
  for (const auto& d : r.differences()) {
    std::printf("\n  %s\n", d.key().c_str());
    std::printf("    a: %s\n", d.a().empty() ? "(missing)" : d.a().c_str());
    std::printf("    b: %s\n", d.b().empty() ? "(missing)" : d.b().c_str());
    std::string fields = d.fields();
    for (size_t at = 0;
         (at = fields.find('\n', at)) != std::string::npos && at + 1 < fields.size();) {
      fields.replace(at, 1, "\n            ");
      at += 13;
    }
    while (!fields.empty() && fields.back() == '\n') fields.pop_back();
    std::printf("    fields: %s\n", fields.c_str());
  }
  if (static_cast<uint64_t>(r.differences_size()) < r.differing_rows()) {
    std::printf("\n  ... %llu more (raise --max)\n",
                static_cast<unsigned long long>(r.differing_rows() - r.differences_size()));
  }
}

int Main(int argc, char** argv) {
  CLI::App app{"fidelis: command-line client for the Fidelis account service"};
  app.require_subcommand(1);
  Globals g;
  app.add_option("--server", g.server, "Server address host:port")->capture_default_str();
  app.add_flag("--json", g.json, "Print responses as JSON");
  app.add_option("--timeout", g.timeout_seconds, "Call deadline in seconds (0: none)")
      ->capture_default_str();
  app.add_option("--token", g.token, "Bearer token (default: --token-file, then $FIDELIS_TOKEN)");
  app.add_option("--token-file", g.token_file, "File holding the bearer token");
  app.add_option("--tls-ca", g.tls.tls_ca_file, "CA certificate (PEM) of the server; enables TLS");
  app.add_option("--tls-cert", g.tls.tls_cert_file, "Client certificate (PEM), for mTLS");
  app.add_option("--tls-key", g.tls.tls_key_file, "Client key (PEM), for mTLS");
  app.add_option("--tls-server-name", g.tls.tls_server_name,
                 "Name to check in the server's certificate");

  // ---- account ----
  CLI::App* account = app.add_subcommand("account", "Account commands and queries");
  account->require_subcommand(1);
  auto add_command_options = [&g](CLI::App* cmd) {
    cmd->add_option("--command-id", g.command_id, "Idempotency key");
    cmd->add_option("--expected-version", g.expected_version, "Optimistic concurrency check");
    cmd->add_option("--correlation-id", g.correlation_id, "Correlation id for the events");
  };
  std::string number, holder, amount = "0", currency = "EUR", account_id, reference, reason;
  std::string from_id, to_id;
  CLI::App* open = account->add_subcommand("open", "Open an account");
  open->add_option("--number", number, "Account number (letters and digits)")->required();
  open->add_option("--holder", holder, "Holder name")->required();
  open->add_option("--deposit", amount, "Opening deposit, e.g. 100.00")->capture_default_str();
  open->add_option("--currency", currency, "ISO 4217 currency")->capture_default_str();
  add_command_options(open);
  CLI::App* deposit = account->add_subcommand("deposit", "Deposit money");
  CLI::App* withdraw = account->add_subcommand("withdraw", "Withdraw money");
  for (CLI::App* cmd : {deposit, withdraw}) {
    cmd->add_option("--account", account_id, "Account id")->required();
    cmd->add_option("--amount", amount, "Amount, e.g. 12.34")->required();
    cmd->add_option("--currency", currency, "ISO 4217 currency")->capture_default_str();
    cmd->add_option("--reference", reference, "Reference text");
    add_command_options(cmd);
  }
  CLI::App* close = account->add_subcommand("close", "Close an account with a zero balance");
  close->add_option("--account", account_id, "Account id")->required();
  close->add_option("--reason", reason, "Reason");
  add_command_options(close);
  CLI::App* transfer = account->add_subcommand("transfer", "Transfer money between accounts");
  transfer->add_option("--from", from_id, "Source account id")->required();
  transfer->add_option("--to", to_id, "Destination account id")->required();
  transfer->add_option("--amount", amount, "Amount, e.g. 12.34")->required();
  transfer->add_option("--currency", currency, "ISO 4217 currency")->capture_default_str();
  transfer->add_option("--reference", reference, "Reference text");
  add_command_options(transfer);
  std::string batch_file = "-";
  CLI::App* batch = account->add_subcommand(
      "batch", "Run commands read as JSON lines (one BatchCommand each) in one call");
  batch->add_option("--file", batch_file, "File of JSON lines; - reads standard input")
      ->capture_default_str();
  uint64_t min_position = 0;
  CLI::App* get = account->add_subcommand("get", "Show an account's summary");
  get->add_option("--account", account_id, "Account id")->required();
  get->add_option("--min-position", min_position, "Wait until this global position is applied");
  bool report = false;
  get->add_flag("--report", report, "Show the account report instead of the summary");
  int page_size = 0;
  std::string page_token;
  bool all_pages = false;
  CLI::App* list = account->add_subcommand("list", "List account summaries");
  list->add_option("--page-size", page_size, "Accounts per page (1-1000)");
  list->add_option("--page-token", page_token, "Token from a previous page");
  list->add_flag("--all", all_pages, "Follow page tokens to the end");

  // ---- events ----
  CLI::App* events = app.add_subcommand("events", "Read the event log");
  events->require_subcommand(1);
  std::string stream;
  int64_t from_version = 1;
  uint64_t from_position = 1;
  int max_count = 100;
  CLI::App* read = events->add_subcommand("read", "Read a stream, or the whole log");
  read->add_option("--stream", stream, "Stream id, e.g. Account-<id>; omit for all");
  read->add_option("--from-version", from_version, "First stream version")->capture_default_str();
  read->add_option("--from-position", from_position, "First global position (whole log)")
      ->capture_default_str();
  read->add_option("--max", max_count, "Most events to read (1-1000)")->capture_default_str();
  uint64_t tail_limit = 0;
  CLI::App* tail = events->add_subcommand("tail", "Follow the log live (Ctrl-C to stop)");
  tail->add_option("--from-position", from_position, "First global position")
      ->capture_default_str();
  tail->add_option("--limit", tail_limit, "Stop after this many events (0: never)");

  // ---- projection ----
  CLI::App* projection = app.add_subcommand("projection", "Operate projections");
  projection->require_subcommand(1);
  CLI::App* plist = projection->add_subcommand("list", "Show projections, checkpoints and lag");
  std::string projection_name, unknown_policy = "skip", handler_policy = "skip", rebuild_id;
  int batch_size = 0;
  uint64_t max_rate = 0;
  bool strict = false;
  CLI::App* rebuild = projection->add_subcommand("rebuild", "Rebuild projections from the log");
  rebuild->add_option("--projection", projection_name, "Projection name; omit for all");
  rebuild->add_option("--batch-size", batch_size, "Events per write batch (default 1000)");
  rebuild->add_option("--unknown-events", unknown_policy, "skip or fail")
      ->check(CLI::IsMember({"skip", "fail"}))
      ->capture_default_str();
  rebuild->add_option("--handler-errors", handler_policy, "skip or fail")
      ->check(CLI::IsMember({"skip", "fail"}))
      ->capture_default_str();
  rebuild->add_option("--max-rate", max_rate, "Replay at most this many events per second");
  rebuild->add_flag("--strict", strict, "Treat skipped events as an error (exit status 1)");
  bool blue_green = false, in_place = false, no_promote = false, no_yield = false,
       no_idle_priority = false;
  uint32_t target_version = 0, nice = 0;
  auto* bg_flag = rebuild->add_flag(
      "--blue-green", blue_green,
      "Build a shadow beside the live build, catch up, then promote it (default for a live "
      "projection)");
  rebuild
      ->add_flag("--in-place", in_place,
                 "Truncate and replay the live build (queries get UNAVAILABLE meanwhile)")
      ->excludes(bg_flag);
  rebuild->add_flag("--no-promote", no_promote,
                    "Blue-green: stop when the shadow has caught up; promote or abort later");
  rebuild->add_option("--target-version", target_version,
                      "Blue-green: version to build (default: the newest the server has)");
  rebuild->add_option("--nice", nice, "Niceness of the rebuild's threads, 1-19 (default: server)")
      ->check(CLI::Range(0, 19));
  rebuild->add_flag("--no-yield", no_yield,
                    "Do not pause between batches while commands wait for the log writer");
  rebuild->add_flag("--no-idle-priority", no_idle_priority,
                    "Run the rebuild's threads at their niceness, not under SCHED_IDLE");
  CLI::App* promote = projection->add_subcommand(
      "promote", "Make a caught-up shadow live (the live build is kept for a rollback)");
  CLI::App* abort_cmd =
      projection->add_subcommand("abort", "Stop a blue-green rebuild and drop its shadow");
  CLI::App* rollback = projection->add_subcommand("rollback", "Make the previous build live again");
  CLI::App* retire = projection->add_subcommand("retire", "Drop the previous build now");
  for (CLI::App* sub : {promote, abort_cmd, rollback, retire}) {
    sub->add_option("projection", projection_name, "Projection name")->required();
  }
  std::string diff_a = "live", diff_b = "shadow";
  int max_differences = 0;
  CLI::App* diff = projection->add_subcommand(
      "diff", "Compare two builds of a projection at the same checkpoint");
  diff->add_option("projection", projection_name, "Projection name")->required();
  diff->add_option("a", diff_a, "live, shadow, previous, a version (2) or a build (v2.1)")
      ->capture_default_str();
  diff->add_option("b", diff_b, "Same choices as a")->capture_default_str();
  diff->add_option("--max", max_differences, "Differing rows to show (default 20)");
  CLI::App* status_cmd = projection->add_subcommand("status", "Show rebuilds (or one rebuild)");
  status_cmd->add_option("id", rebuild_id, "Rebuild id");
  CLI::App* watch = projection->add_subcommand("watch", "Follow a running rebuild");
  watch->add_option("id", rebuild_id, "Rebuild id")->required();
  watch->add_flag("--strict", strict, "Treat skipped events as an error (exit status 1)");
  CLI::App* cancel = projection->add_subcommand("cancel", "Cancel a running rebuild");
  cancel->add_option("id", rebuild_id, "Rebuild id")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  g.token = ResolveToken(g.token, g.token_file);
  auto channel = Connect(g.server, g.tls);
  v1::AccountCommands::Stub commands(channel);
  v1::AccountQueries::Stub queries(channel);
  v1::EventLog::Stub log(channel);
  v1::ProjectionAdmin::Stub admin(channel);
  grpc::ClientContext context;
  Prepare(context, g);

  auto money = [&](v1::Money* out) -> bool {
    std::optional<int64_t> minor = ParseAmount(amount, currency);
    if (!minor) return false;
    out->set_minor_units(*minor);
    out->set_currency(currency);
    return true;
  };

  if (*open) {
    v1::OpenAccountRequest request;
    request.set_account_number(number);
    request.set_holder_name(holder);
    if (!money(request.mutable_opening_deposit())) return Usage("--deposit is not an amount");
    FillOptions(request.mutable_options(), g);
    v1::CommandResult result;
    return PrintCommandResult(commands.OpenAccount(&context, request, &result), result, g,
                              "Opened");
  }
  if (*deposit || *withdraw) {
    v1::Money m;
    if (!money(&m)) return Usage("--amount is not an amount for " + currency);
    v1::CommandResult result;
    grpc::Status status;
    if (*deposit) {
      v1::MakeDepositRequest request;
      request.set_account_id(account_id);
      *request.mutable_amount() = m;
      request.set_reference(reference);
      FillOptions(request.mutable_options(), g);
      status = commands.MakeDeposit(&context, request, &result);
    } else {
      v1::MakeWithdrawalRequest request;
      request.set_account_id(account_id);
      *request.mutable_amount() = m;
      request.set_reference(reference);
      FillOptions(request.mutable_options(), g);
      status = commands.MakeWithdrawal(&context, request, &result);
    }
    return PrintCommandResult(status, result, g,
                              (*deposit ? "Deposited " : "Withdrew ") + amount + " " + currency +
                                  (*deposit ? " to" : " from"));
  }
  if (*close) {
    v1::CloseAccountRequest request;
    request.set_account_id(account_id);
    request.set_reason(reason);
    FillOptions(request.mutable_options(), g);
    v1::CommandResult result;
    return PrintCommandResult(commands.CloseAccount(&context, request, &result), result, g,
                              "Closed");
  }
  if (*transfer) {
    v1::TransferFundsRequest request;
    request.set_from_account_id(from_id);
    request.set_to_account_id(to_id);
    if (!money(request.mutable_amount())) return Usage("--amount is not an amount");
    request.set_reference(reference);
    FillOptions(request.mutable_options(), g);
    v1::TransferFundsResponse result;
    grpc::Status status = commands.TransferFunds(&context, request, &result);
    if (!status.ok()) return ReportStatus(status);
    if (g.json) {
      std::cout << ToJson(result) << "\n";
    } else {
      std::cout << "Transferred " << amount << " " << currency << " from " << from_id << " to "
                << to_id << " (transfer " << result.transfer_id() << ", positions "
                << result.debit_global_position() << " and " << result.credit_global_position()
                << ")\n";
    }
    return 0;
  }
  if (*batch) {
    std::ifstream file;
    std::istream* in = &std::cin;
    if (batch_file != "-") {
      file.open(batch_file);
      if (!file) return Usage("cannot read " + batch_file);
      in = &file;
    }
    v1::ExecuteCommandsRequest request;
    std::string line;
    for (int number = 1; std::getline(*in, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto parsed = google::protobuf::util::JsonStringToMessage(line, request.add_commands());
      if (!parsed.ok()) {
        return Usage("line " + std::to_string(number) +
                     " is not a command: " + std::string(parsed.message()));
      }
    }
    v1::ExecuteCommandsResponse response;
    grpc::Status status = commands.ExecuteCommands(&context, request, &response);
    if (!status.ok()) return ReportStatus(status);
    if (g.json) std::cout << ToJson(response) << "\n";
    int failed = 0;
    for (int i = 0; i < response.outcomes_size(); ++i) {
      const v1::BatchOutcome& outcome = response.outcomes(i);
      if (outcome.status().code() != 0) ++failed;
      if (g.json) continue;
      std::cout << "[" << i << "] ";
      if (outcome.status().code() != 0) {
        std::cout << CodeName(static_cast<grpc::StatusCode>(outcome.status().code())) << ": "
                  << outcome.status().message() << "\n";
      } else if (outcome.has_transfer()) {
        std::cout << "OK transfer " << outcome.transfer().transfer_id() << " (positions "
                  << outcome.transfer().debit_global_position() << " and "
                  << outcome.transfer().credit_global_position()
                  << (outcome.transfer().deduplicated() ? ", deduplicated retry" : "") << ")\n";
      } else {
        std::cout << "OK account " << outcome.command().account_id() << " (stream version "
                  << outcome.command().stream_version() << ", global position "
                  << outcome.command().global_position()
                  << (outcome.command().deduplicated() ? ", deduplicated retry" : "") << ")\n";
      }
    }
    if (!g.json) {
      std::cout << response.outcomes_size() - failed << " of " << response.outcomes_size()
                << " commands succeeded\n";
    }
    return failed == 0 ? 0 : 1;
  }
  if (*get) {
    if (report) {
      v1::GetAccountReportRequest request;
      request.set_account_id(account_id);
      request.set_min_global_position(min_position);
      v1::AccountReport r;
      grpc::Status status = queries.GetAccountReport(&context, request, &r);
      if (!status.ok()) return ReportStatus(status);
      if (g.json) {
        std::cout << ToJson(r) << "\n";
      } else {
        std::cout << "report " << r.account_id() << " (" << r.currency() << ")\n"
                  << "  deposits:      " << r.deposit_count() << " totalling "
                  << FormatAmount(r.total_deposits(), r.currency()) << "\n"
                  << "  withdrawals:   " << r.withdrawal_count() << " totalling "
                  << FormatAmount(r.total_withdrawals(), r.currency()) << "\n"
                  << "  transfers in:  " << r.transfer_in_count() << " totalling "
                  << FormatAmount(r.total_transfers_in(), r.currency()) << "\n"
                  << "  transfers out: " << r.transfer_out_count() << " totalling "
                  << FormatAmount(r.total_transfers_out(), r.currency()) << "\n"
                  << "  opened:        " << TimeUtil::ToString(r.opened_at()) << "\n"
                  << "  closed:        "
                  << (r.has_closed_at() ? TimeUtil::ToString(r.closed_at()) : "-") << "\n";
      }
      return 0;
    }
    v1::GetAccountSummaryRequest request;
    request.set_account_id(account_id);
    request.set_min_global_position(min_position);
    v1::AccountSummary summary;
    grpc::Status status = queries.GetAccountSummary(&context, request, &summary);
    if (!status.ok()) return ReportStatus(status);
    if (g.json) {
      std::cout << ToJson(summary) << "\n";
    } else {
      PrintSummary(summary);
    }
    return 0;
  }
  if (*list) {
    v1::ListAccountSummariesRequest request;
    request.set_page_size(page_size);
    request.set_page_token(page_token);
    bool header = false;
    while (true) {
      grpc::ClientContext page_context;
      Prepare(page_context, g);
      v1::ListAccountSummariesResponse response;
      grpc::Status status = queries.ListAccountSummaries(&page_context, request, &response);
      if (!status.ok()) return ReportStatus(status);
      if (g.json) {
        std::cout << ToJson(response) << "\n";
      } else {
        if (!header) {
          std::printf("%-32s  %-20s  %-24s  %18s  %-3s  %6s  %s\n", "ACCOUNT", "NUMBER", "HOLDER",
                      "BALANCE", "CUR", "TXNS", "STATUS");
          header = true;
        }
        for (const auto& s : response.accounts()) {
          std::printf("%-32s  %-20s  %-24.24s  %18s  %-3s  %6lld  %s\n", s.account_id().c_str(),
                      s.account_number().c_str(), s.holder_name().c_str(),
                      FormatAmount(s.balance().minor_units(), s.balance().currency()).c_str(),
                      s.balance().currency().c_str(), static_cast<long long>(s.transaction_count()),
                      v1::AccountStatus_Name(s.status()).substr(15).c_str());
        }
        if (!all_pages && !response.next_page_token().empty()) {
          std::printf("next page: --page-token %s\n", response.next_page_token().c_str());
        }
      }
      if (!all_pages || response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return 0;
  }
  if (*read) {
    if (!stream.empty()) {
      v1::ReadStreamRequest request;
      request.set_stream_id(stream);
      request.set_from_version(from_version);
      request.set_max_count(max_count);
      v1::ReadStreamResponse response;
      grpc::Status status = log.ReadStream(&context, request, &response);
      if (!status.ok()) return ReportStatus(status);
      for (const auto& e : response.events()) {
        std::cout << (g.json ? ToJson(e) : DescribeEvent(e)) << "\n";
      }
      return 0;
    }
    v1::ReadAllRequest request;
    request.set_from_position(from_position);
    request.set_max_count(max_count);
    v1::ReadAllResponse response;
    grpc::Status status = log.ReadAll(&context, request, &response);
    if (!status.ok()) return ReportStatus(status);
    for (const auto& e : response.events()) {
      std::cout << (g.json ? ToJson(e) : DescribeEvent(e)) << "\n";
    }
    if (!g.json) std::cout << "head position: " << response.head_position() << "\n";
    return 0;
  }
  if (*tail) {
    grpc::ClientContext stream_context;  // No deadline: a tail follows until stopped.
    if (!g.token.empty()) stream_context.AddMetadata("authorization", "Bearer " + g.token);
    v1::SubscribeAllRequest request;
    request.set_from_position(from_position);
    auto reader = log.SubscribeAll(&stream_context, request);
    v1::RecordedEvent e;
    uint64_t seen = 0;
    while (reader->Read(&e)) {
      std::cout << (g.json ? ToJson(e) : DescribeEvent(e)) << std::endl;
      if (tail_limit > 0 && ++seen >= tail_limit) {
        stream_context.TryCancel();
        break;
      }
    }
    grpc::Status status = reader->Finish();
    if (tail_limit > 0 && seen >= tail_limit) return 0;
    return ReportStatus(status);
  }
  if (*rebuild || *watch) {
    grpc::ClientContext stream_context;  // No deadline: a rebuild takes as long as it takes.
    if (!g.token.empty()) stream_context.AddMetadata("authorization", "Bearer " + g.token);
    std::unique_ptr<grpc::ClientReader<v1::RebuildProgress>> reader;
    if (*rebuild) {
      v1::RebuildProjectionRequest request;
      request.set_projection(projection_name);
      request.set_batch_size(batch_size);
      request.set_unknown_event_policy(unknown_policy == "fail" ? v1::FAIL : v1::SKIP);
      request.set_handler_error_policy(handler_policy == "fail" ? v1::FAIL : v1::SKIP);
      request.set_max_events_per_second(max_rate);
      request.set_mode(blue_green ? v1::BLUE_GREEN
                       : in_place ? v1::IN_PLACE
                                  : v1::MODE_UNSPECIFIED);
      request.set_no_promote(no_promote);
      request.set_target_version(target_version);
      request.set_nice(nice);
      request.set_no_yield(no_yield);
      request.set_no_idle_priority(no_idle_priority);
      reader = admin.RebuildProjection(&stream_context, request);
    } else {
      v1::WatchRebuildRequest request;
      request.set_rebuild_id(rebuild_id);
      reader = admin.WatchRebuild(&stream_context, request);
    }
    const bool tty = !g.json && isatty(STDOUT_FILENO);
    RebuildView view(stdout, tty);
    v1::RebuildProgress progress;
    while (reader->Read(&progress)) {
      if (g.json) {
        std::cout << ToJson(progress) << std::endl;
      } else {
        view.Update(progress);
      }
    }
    grpc::Status status = reader->Finish();
    if (!status.ok()) return ReportStatus(status);
    if (g.json) return progress.result().success() ? 0 : 1;
    return view.Finish(strict, *rebuild && projection_name.empty());
  }
  if (*status_cmd) {
    v1::ListRebuildsResponse response;
    if (!rebuild_id.empty()) {
      v1::GetRebuildRequest request;
      request.set_rebuild_id(rebuild_id);
      grpc::Status status = admin.GetRebuild(&context, request, response.add_rebuilds());
      if (!status.ok()) return ReportStatus(status);
    } else {
      grpc::Status status = admin.ListRebuilds(&context, v1::ListRebuildsRequest(), &response);
      if (!status.ok()) return ReportStatus(status);
    }
    if (g.json) {
      std::cout << ToJson(response) << "\n";
      return 0;
    }
    if (response.rebuilds().empty()) std::cout << "no rebuilds since the server started\n";
    for (const auto& info : response.rebuilds()) {
      std::cout << RebuildView::PlainLine(info.progress()) << "\n";
    }
    return 0;
  }
  if (*cancel) {
    v1::CancelRebuildRequest request;
    request.set_rebuild_id(rebuild_id);
    v1::RebuildInfo info;
    grpc::Status status = admin.CancelRebuild(&context, request, &info);
    if (!status.ok()) return ReportStatus(status);
    if (g.json) {
      std::cout << ToJson(info) << "\n";
    } else {
      std::cout << RebuildView::PlainLine(info.progress()) << "\n";
    }
    return 0;
  }
  if (*plist) {
    v1::ListProjectionsResponse response;
    grpc::Status status = admin.ListProjections(&context, v1::ListProjectionsRequest(), &response);
    if (!status.ok()) return ReportStatus(status);
    if (g.json) {
      std::cout << ToJson(response) << "\n";
      return 0;
    }
    std::printf("%-16s  %-8s  %-6s  %12s  %12s  %s\n", "PROJECTION", "ROLE", "BUILD", "CHECKPOINT",
                "LAG", "STATE");
    for (const auto& p : response.projections()) {
      PrintBuilds(p);
    }
    return 0;
  }
  if (*promote || *abort_cmd || *rollback || *retire) {
    v1::ProjectionInfo info;
    grpc::Status status;
    if (*promote) {
      v1::PromoteProjectionRequest request;
      request.set_projection(projection_name);
      status = admin.PromoteProjection(&context, request, &info);
    } else if (*abort_cmd) {
      v1::AbortRebuildRequest request;
      request.set_projection(projection_name);
      status = admin.AbortRebuild(&context, request, &info);
    } else if (*rollback) {
      v1::RollbackProjectionRequest request;
      request.set_projection(projection_name);
      status = admin.RollbackProjection(&context, request, &info);
    } else {
      v1::RetireProjectionRequest request;
      request.set_projection(projection_name);
      status = admin.RetireProjection(&context, request, &info);
    }
    if (!status.ok()) return ReportStatus(status);
    if (g.json) {
      std::cout << ToJson(info) << "\n";
    } else {
      PrintBuilds(info);
    }
    return 0;
  }
  if (*diff) {
    v1::DiffProjectionRequest request;
    request.set_projection(projection_name);
    request.set_a(diff_a);
    request.set_b(diff_b);
    request.set_max_differences(max_differences);
    v1::DiffProjectionResponse response;
    grpc::Status status = admin.DiffProjection(&context, request, &response);
    if (!status.ok()) return ReportStatus(status);
    if (g.json) {
      std::cout << ToJson(response) << "\n";
      return response.differing_rows() == 0 ? 0 : 1;
    }
    PrintDiff(projection_name, response);
    // Like diff(1): 0 when the builds hold the same rows, 1 when they differ.
    return response.differing_rows() == 0 ? 0 : 1;
  }
  return Usage("unknown command");
}

}  // namespace fidelis::clients

int main(int argc, char** argv) { return fidelis::clients::Main(argc, argv); }
