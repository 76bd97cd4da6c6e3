#include "server/write/command_table.h"

#include <utility>

#include "fidelis/v1/accounts.pb.h"

namespace fidelis::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::Message;

v1::CommandResult ToResult(const CommandOutcome& outcome) {
  v1::CommandResult response;
  response.set_account_id(outcome.account_id);
  response.set_stream_version(outcome.stream_version);
  response.set_global_position(outcome.global_position);
  response.set_deduplicated(outcome.deduplicated);
  return response;
}

// The callback that turns a handler's outcome into the response message.
template <typename Outcome, typename Response>
absl::AnyInvocable<void(absl::StatusOr<Outcome>) &&> Responding(
    ResponseDone done, Response (*to_response)(const Outcome&)) {
  return [done = std::move(done), to_response](absl::StatusOr<Outcome> outcome) mutable {
    if (!outcome.ok()) return std::move(done)(outcome.status());
    std::move(done)(std::make_unique<Response>(to_response(*outcome)));
  };
}

// The part of a row every kind shares.
template <typename Request, typename Response>
class TypedRow : public CommandRow {
 public:
  explicit TypedRow(std::string_view method) : method_(method) {}
  std::string_view method() const final { return method_; }
  const Descriptor* request_type() const final { return Request::descriptor(); }
  const Descriptor* response_type() const final { return Response::descriptor(); }
  std::unique_ptr<Message> NewRequest() const final { return std::make_unique<Request>(); }

 private:
  const std::string_view method_;
};

// A command on one existing account (AccountCommand), named by the request's account_id: the
// domain command made from the request, its shape check and its decision.
template <typename Request, typename Command>
class OnAccountRow final : public TypedRow<Request, v1::CommandResult> {
 public:
  using From = Command (*)(const Request&);
  using Validate = absl::Status (*)(const Command&);
  using Decide = absl::StatusOr<std::vector<NewEvent>> (*)(const AccountState&, const Command&);

  OnAccountRow(std::string_view method, From from, Validate validate, Decide decide)
      : TypedRow<Request, v1::CommandResult>(method),
        from_(from),
        validate_(validate),
        decide_(decide) {}

  CommandRow::AccountIds Accounts(const Message& request) const override {
    return {static_cast<const Request&>(request).account_id()};
  }

  void Run(CommandHandler& handler, const Message& message, absl::Time deadline,
           ResponseDone done) const override {
    const auto& request = static_cast<const Request&>(message);
    absl::StatusOr<CommandContext> context = ContextOf(this->method(), request, deadline);
    if (!context.ok()) return std::move(done)(context.status());
    handler.ExecuteAsync(MakeAccountCommand(from_(request), validate_, decide_),
                         *std::move(context), Responding(std::move(done), &ToResult));
  }

 private:
  const From from_;
  const Validate validate_;
  const Decide decide_;
};

class OpenRow final : public TypedRow<v1::OpenAccountRequest, v1::CommandResult> {
 public:
  using TypedRow::TypedRow;

  AccountIds Accounts(const Message&) const override { return {}; }

  void Run(CommandHandler& handler, const Message& message, absl::Time deadline,
           ResponseDone done) const override {
    const auto& request = static_cast<const v1::OpenAccountRequest&>(message);
    absl::StatusOr<CommandContext> context = ContextOf(method(), request, deadline);
    if (!context.ok()) return std::move(done)(context.status());
    OpenAccountCommand command;
    command.account_number = request.account_number();
    command.holder_name = request.holder_name();
    command.opening_minor_units = request.opening_deposit().minor_units();
    command.currency = request.opening_deposit().currency();
    handler.OpenAsync(std::move(command), *std::move(context),
                      Responding(std::move(done), &ToResult));
  }
};

class TransferRow final : public TypedRow<v1::TransferFundsRequest, v1::TransferFundsResponse> {
 public:
  using TypedRow::TypedRow;

  AccountIds Accounts(const Message& message) const override {
    const auto& request = static_cast<const v1::TransferFundsRequest&>(message);
    return {request.from_account_id(), request.to_account_id()};
  }

  void Run(CommandHandler& handler, const Message& message, absl::Time deadline,
           ResponseDone done) const override {
    const auto& request = static_cast<const v1::TransferFundsRequest&>(message);
    absl::StatusOr<CommandContext> context = ContextOf(method(), request, deadline);
    if (!context.ok()) return std::move(done)(context.status());
    TransferCommand command;
    command.from_account_id = request.from_account_id();
    command.to_account_id = request.to_account_id();
    command.minor_units = request.amount().minor_units();
    command.currency = request.amount().currency();
    command.reference = request.reference();
    std::optional<int64_t> from_expected, to_expected;
    if (request.has_from_expected_version()) from_expected = request.from_expected_version();
    if (request.has_to_expected_version()) to_expected = request.to_expected_version();
    handler.TransferAsync(std::move(command), *std::move(context), from_expected, to_expected,
                          Responding(std::move(done), &ToResponse));
  }

 private:
  static v1::TransferFundsResponse ToResponse(const TransferOutcome& outcome) {
    v1::TransferFundsResponse response;
    response.set_transfer_id(outcome.transfer_id);
    response.set_from_stream_version(outcome.from_version);
    response.set_to_stream_version(outcome.to_version);
    response.set_debit_global_position(outcome.debit_position);
    response.set_credit_global_position(outcome.credit_position);
    response.set_deduplicated(outcome.deduplicated);
    return response;
  }
};

template <typename Request, typename Command>
std::unique_ptr<const CommandRow> OnAccount(
    std::string_view method, Command (*from)(const Request&),
    absl::Status (*validate)(const Command&),
    absl::StatusOr<std::vector<NewEvent>> (*decide)(const AccountState&, const Command&)) {
  return std::make_unique<OnAccountRow<Request, Command>>(method, from, validate, decide);
}

DepositCommand DepositOf(const v1::MakeDepositRequest& r) {
  return {r.account_id(), r.amount().minor_units(), r.amount().currency(), r.reference()};
}

WithdrawalCommand WithdrawalOf(const v1::MakeWithdrawalRequest& r) {
  return {r.account_id(), r.amount().minor_units(), r.amount().currency(), r.reference()};
}

CloseAccountCommand CloseOf(const v1::CloseAccountRequest& r) {
  return {r.account_id(), r.reason()};
}

}  // namespace

const std::vector<std::unique_ptr<const CommandRow>>& CommandTable() {
  static const auto* table = [] {
    auto* rows = new std::vector<std::unique_ptr<const CommandRow>>();
    rows->push_back(std::make_unique<OpenRow>("OpenAccount"));
    rows->push_back(OnAccount("MakeDeposit", &DepositOf, &ValidateDeposit, &DecideDeposit));
    rows->push_back(
        OnAccount("MakeWithdrawal", &WithdrawalOf, &ValidateWithdrawal, &DecideWithdrawal));
    rows->push_back(OnAccount("CloseAccount", &CloseOf, &ValidateClose, &DecideClose));
    rows->push_back(std::make_unique<TransferRow>("TransferFunds"));
    return rows;
  }();
  return *table;
}

const CommandRow* FindCommandRow(const Descriptor* request_type) {
  for (const auto& row : CommandTable()) {
    if (row->request_type() == request_type) return row.get();
  }
  return nullptr;
}

}  // namespace fidelis::server
