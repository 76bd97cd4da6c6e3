// fidelis account ...: the commands (open, deposit, withdraw, close, transfer, batch) and the
// account queries (get, list).
#include <fstream>
#include <iostream>

#include "clients/cli.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace fidelis::clients {
namespace {

using google::protobuf::util::TimeUtil;

int PrintCommandResult(const Cli& cli, const grpc::Status& status, const v1::CommandResult& result,
                       const std::string& what) {
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) {
    std::cout << ToJson(result) << "\n";
  } else {
    std::cout << what << " account " << result.account_id() << " (stream version "
              << result.stream_version() << ", global position " << result.global_position()
              << (result.deduplicated() ? ", deduplicated retry" : "") << ")\n";
  }
  return 0;
}

// An amount typed as a decimal in `currency`, as money; false when it is not one.
bool ToMoney(const std::string& amount, const std::string& currency, v1::Money* out) {
  std::optional<int64_t> minor = ParseAmount(amount, currency);
  if (!minor) return false;
  out->set_minor_units(*minor);
  out->set_currency(currency);
  return true;
}

// Fills `currency`, when the user gave none, with the currency account_id is kept in, and says
// on stderr what it used. The amount's decimals depend on it, so it is known before parsing.
grpc::Status DefaultCurrency(Cli& cli, const std::string& account_id, std::string& currency) {
  if (!currency.empty()) return grpc::Status::OK;
  v1::GetAccountSummaryRequest request;
  request.set_account_id(account_id);
  v1::AccountSummary summary;
  grpc::Status status = cli.queries().GetAccountSummary(cli.Context().get(), request, &summary);
  if (!status.ok()) return status;
  currency = summary.balance().currency();
  std::cerr << "no --currency given: using " << currency << ", the currency of account "
            << account_id << "\n";
  return grpc::Status::OK;
}

struct OpenFlags {
  std::string number, holder, amount = "0", currency = "EUR";
  CommandFlags command;
};

int RunOpen(Cli& cli, const OpenFlags& f) {
  v1::OpenAccountRequest request;
  request.set_account_number(f.number);
  request.set_holder_name(f.holder);
  if (!ToMoney(f.amount, f.currency, request.mutable_opening_deposit())) {
    return Usage("--deposit is not an amount");
  }
  f.command.Fill(request.mutable_options());
  v1::CommandResult result;
  grpc::Status status = cli.commands().OpenAccount(cli.Context().get(), request, &result);
  return PrintCommandResult(cli, status, result, "Opened");
}

struct MoneyFlags {
  std::string account_id, amount, currency, reference;
  CommandFlags command;
};

int RunDeposit(Cli& cli, MoneyFlags f) {
  if (grpc::Status s = DefaultCurrency(cli, f.account_id, f.currency); !s.ok()) {
    return ReportStatus(s);
  }
  v1::MakeDepositRequest request;
  request.set_account_id(f.account_id);
  if (!ToMoney(f.amount, f.currency, request.mutable_amount())) {
    return Usage("--amount is not an amount for " + f.currency);
  }
  request.set_reference(f.reference);
  f.command.Fill(request.mutable_options());
  v1::CommandResult result;
  grpc::Status status = cli.commands().MakeDeposit(cli.Context().get(), request, &result);
  return PrintCommandResult(cli, status, result,
                            "Deposited " + f.amount + " " + f.currency + " to");
}

int RunWithdraw(Cli& cli, MoneyFlags f) {
  if (grpc::Status s = DefaultCurrency(cli, f.account_id, f.currency); !s.ok()) {
    return ReportStatus(s);
  }
  v1::MakeWithdrawalRequest request;
  request.set_account_id(f.account_id);
  if (!ToMoney(f.amount, f.currency, request.mutable_amount())) {
    return Usage("--amount is not an amount for " + f.currency);
  }
  request.set_reference(f.reference);
  f.command.Fill(request.mutable_options());
  v1::CommandResult result;
  grpc::Status status = cli.commands().MakeWithdrawal(cli.Context().get(), request, &result);
  return PrintCommandResult(cli, status, result,
                            "Withdrew " + f.amount + " " + f.currency + " from");
}

struct CloseFlags {
  std::string account_id, reason;
  CommandFlags command;
};

int RunClose(Cli& cli, const CloseFlags& f) {
  v1::CloseAccountRequest request;
  request.set_account_id(f.account_id);
  request.set_reason(f.reason);
  f.command.Fill(request.mutable_options());
  v1::CommandResult result;
  grpc::Status status = cli.commands().CloseAccount(cli.Context().get(), request, &result);
  return PrintCommandResult(cli, status, result, "Closed");
}

struct TransferFlags {
  std::string from_id, to_id, amount, currency, reference;
  CommandFlags command;
};

int RunTransfer(Cli& cli, TransferFlags f) {
  if (grpc::Status s = DefaultCurrency(cli, f.from_id, f.currency); !s.ok()) {
    return ReportStatus(s);
  }
  v1::TransferFundsRequest request;
  request.set_from_account_id(f.from_id);
  request.set_to_account_id(f.to_id);
  if (!ToMoney(f.amount, f.currency, request.mutable_amount())) {
    return Usage("--amount is not an amount");
  }
  request.set_reference(f.reference);
  f.command.Fill(request.mutable_options());
  v1::TransferFundsResponse result;
  grpc::Status status = cli.commands().TransferFunds(cli.Context().get(), request, &result);
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) {
    std::cout << ToJson(result) << "\n";
  } else {
    std::cout << "Transferred " << f.amount << " " << f.currency << " from " << f.from_id << " to "
              << f.to_id << " (transfer " << result.transfer_id() << ", positions "
              << result.debit_global_position() << " and " << result.credit_global_position()
              << ")\n";
  }
  return 0;
}

void PrintOutcome(int i, const v1::BatchOutcome& outcome) {
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

int RunBatch(Cli& cli, const std::string& batch_file) {
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
  grpc::Status status = cli.commands().ExecuteCommands(cli.Context().get(), request, &response);
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) std::cout << ToJson(response) << "\n";
  int failed = 0;
  for (int i = 0; i < response.outcomes_size(); ++i) {
    if (response.outcomes(i).status().code() != 0) ++failed;
    if (!cli.json) PrintOutcome(i, response.outcomes(i));
  }
  if (!cli.json) {
    std::cout << response.outcomes_size() - failed << " of " << response.outcomes_size()
              << " commands succeeded\n";
  }
  return failed == 0 ? 0 : 1;
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

void PrintReport(const v1::AccountReport& r) {
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
            << "  closed:        " << (r.has_closed_at() ? TimeUtil::ToString(r.closed_at()) : "-")
            << "\n";
}

struct GetFlags {
  std::string account_id;
  uint64_t min_position = 0;
  bool report = false;
};

int RunGet(Cli& cli, const GetFlags& f) {
  if (f.report) {
    v1::GetAccountReportRequest request;
    request.set_account_id(f.account_id);
    request.set_min_global_position(f.min_position);
    v1::AccountReport report;
    grpc::Status status = cli.queries().GetAccountReport(cli.Context().get(), request, &report);
    if (!status.ok()) return ReportStatus(status);
    if (cli.json) {
      std::cout << ToJson(report) << "\n";
    } else {
      PrintReport(report);
    }
    return 0;
  }
  v1::GetAccountSummaryRequest request;
  request.set_account_id(f.account_id);
  request.set_min_global_position(f.min_position);
  v1::AccountSummary summary;
  grpc::Status status = cli.queries().GetAccountSummary(cli.Context().get(), request, &summary);
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) {
    std::cout << ToJson(summary) << "\n";
  } else {
    PrintSummary(summary);
  }
  return 0;
}

struct ListFlags {
  int page_size = 0;
  std::string page_token;
  bool all_pages = false;
};

int RunList(Cli& cli, const ListFlags& f) {
  v1::ListAccountSummariesRequest request;
  request.set_page_size(f.page_size);
  request.set_page_token(f.page_token);
  bool header = false;
  while (true) {
    v1::ListAccountSummariesResponse response;
    grpc::Status status =
        cli.queries().ListAccountSummaries(cli.Context().get(), request, &response);
    if (!status.ok()) return ReportStatus(status);
    if (cli.json) {
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
      if (!f.all_pages && !response.next_page_token().empty()) {
        std::printf("next page: --page-token %s\n", response.next_page_token().c_str());
      }
    }
    if (!f.all_pages || response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  return 0;
}

}  // namespace

void AddAccountCommands(CLI::App& app, Cli& cli) {
  CLI::App* account = app.add_subcommand("account", "Account commands and queries");
  account->require_subcommand(1);

  auto open_flags = std::make_shared<OpenFlags>();
  CLI::App* open = account->add_subcommand("open", "Open an account");
  open->add_option("--number", open_flags->number, "Account number (letters, digits, - _ . /)")
      ->required();
  open->add_option("--holder", open_flags->holder, "Holder name")->required();
  open->add_option("--deposit", open_flags->amount, "Opening deposit, e.g. 100.00")
      ->capture_default_str();
  open->add_option("--currency", open_flags->currency, "ISO 4217 currency")->capture_default_str();
  open_flags->command.AddTo(open);
  OnRun(open, cli, [&cli, open_flags] { return RunOpen(cli, *open_flags); });

  auto money_flags = std::make_shared<MoneyFlags>();
  CLI::App* deposit = account->add_subcommand("deposit", "Deposit money");
  CLI::App* withdraw = account->add_subcommand("withdraw", "Withdraw money");
  for (CLI::App* command : {deposit, withdraw}) {
    command->add_option("--account", money_flags->account_id, "Account id")->required();
    command->add_option("--amount", money_flags->amount, "Amount, e.g. 12.34")->required();
    command->add_option("--currency", money_flags->currency,
                        "ISO 4217 currency (default: the account's)");
    command->add_option("--reference", money_flags->reference, "Reference text");
    money_flags->command.AddTo(command);
  }
  OnRun(deposit, cli, [&cli, money_flags] { return RunDeposit(cli, *money_flags); });
  OnRun(withdraw, cli, [&cli, money_flags] { return RunWithdraw(cli, *money_flags); });

  auto close_flags = std::make_shared<CloseFlags>();
  CLI::App* close = account->add_subcommand("close", "Close an account with a zero balance");
  close->add_option("--account", close_flags->account_id, "Account id")->required();
  close->add_option("--reason", close_flags->reason, "Reason");
  close_flags->command.AddTo(close);
  OnRun(close, cli, [&cli, close_flags] { return RunClose(cli, *close_flags); });

  auto transfer_flags = std::make_shared<TransferFlags>();
  CLI::App* transfer = account->add_subcommand("transfer", "Transfer money between accounts");
  transfer->add_option("--from", transfer_flags->from_id, "Source account id")->required();
  transfer->add_option("--to", transfer_flags->to_id, "Destination account id")->required();
  transfer->add_option("--amount", transfer_flags->amount, "Amount, e.g. 12.34")->required();
  transfer->add_option("--currency", transfer_flags->currency,
                       "ISO 4217 currency (default: the source account's)");
  transfer->add_option("--reference", transfer_flags->reference, "Reference text");
  transfer_flags->command.AddTo(transfer);
  OnRun(transfer, cli, [&cli, transfer_flags] { return RunTransfer(cli, *transfer_flags); });

  auto batch_file = std::make_shared<std::string>("-");
  CLI::App* batch = account->add_subcommand(
      "batch", "Run commands read as JSON lines (one BatchCommand each) in one call");
  batch->add_option("--file", *batch_file, "File of JSON lines; - reads standard input")
      ->capture_default_str();
  OnRun(batch, cli, [&cli, batch_file] { return RunBatch(cli, *batch_file); });

  auto get_flags = std::make_shared<GetFlags>();
  CLI::App* get = account->add_subcommand("get", "Show an account's summary");
  get->add_option("--account", get_flags->account_id, "Account id")->required();
  get->add_option("--min-position", get_flags->min_position,
                  "Wait until this global position is applied");
  get->add_flag("--report", get_flags->report, "Show the account report instead of the summary");
  OnRun(get, cli, [&cli, get_flags] { return RunGet(cli, *get_flags); });

  auto list_flags = std::make_shared<ListFlags>();
  CLI::App* list = account->add_subcommand("list", "List account summaries");
  list->add_option("--page-size", list_flags->page_size, "Accounts per page (1-1000)");
  list->add_option("--page-token", list_flags->page_token, "Token from a previous page");
  list->add_flag("--all", list_flags->all_pages, "Follow page tokens to the end");
  OnRun(list, cli, [&cli, list_flags] { return RunList(cli, *list_flags); });
}

}  // namespace fidelis::clients
