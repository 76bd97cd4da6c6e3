#include "domain/account.h"

#include "absl/strings/ascii.h"
#include "domain/errors.h"
#include "domain/event_types.h"
#include "domain/money.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "fidelis/v1/events.pb.h"

namespace fidelis {
namespace {

// Number of code points in valid UTF-8, or -1 when `s` is not valid UTF-8 (overlongs,
// surrogates and code points above U+10FFFF included).
int64_t Utf8Length(std::string_view s) {
  int64_t count = 0;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      n = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4;
      cp = c & 0x07;
    } else {
      return -1;
    }
    if (i + n > s.size()) return -1;
    for (size_t k = 1; k < n; ++k) {
      unsigned char cc = s[i + k];
      if ((cc & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    i += n;
    ++count;
  }
  return count;
}

std::unique_ptr<v1::Money> MakeMoney(int64_t minor, std::string_view currency) {
  auto money = std::make_unique<v1::Money>();
  money->set_minor_units(minor);
  money->set_currency(std::string(currency));
  return money;
}

template <typename T>
NewEvent Event(std::string_view type, uint32_t version, std::unique_ptr<T> payload) {
  return NewEvent{std::string(type), version, std::move(payload)};
}

absl::Status RequireOpen(const AccountState& state, std::string_view account_id) {
  if (!state.exists()) {
    return absl::NotFoundError(StrCat("account ", account_id, " does not exist"));
  }
  if (state.closed) {
    return absl::FailedPreconditionError(
        StrCat("account ", account_id, " is closed and takes no further commands"));
  }
  return absl::OkStatus();
}

absl::Status RequireCurrency(const AccountState& state, std::string_view currency) {
  if (currency != state.currency) {
    return absl::FailedPreconditionError(
        StrCat("account ", state.account_id, " holds ", state.currency, ", not ", currency));
  }
  return absl::OkStatus();
}

absl::Status ValidateAmount(std::string_view prefix, int64_t minor, std::string_view currency) {
  RETURN_IF_ERROR(ValidatePositiveAmount(StrCat(prefix, ".minor_units"), minor));
  return ValidateCurrency(StrCat(prefix, ".currency"), currency);
}

}  // namespace

absl::Status ValidateAccountId(std::string_view field, std::string_view account_id) {
  if (account_id.empty()) return InvalidField(field, "is required");
  bool hex = account_id.size() == kAccountIdLength;
  for (char c : account_id) hex = hex && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!hex) {
    return InvalidField(field, StrCat("must be ", kAccountIdLength,
                                      " lower-case hex digits as returned by OpenAccount"));
  }
  return absl::OkStatus();
}

absl::Status ValidateText(std::string_view field, std::string_view value, size_t max_length,
                          bool required) {
  if (value.empty()) {
    return required ? InvalidField(field, "is required") : absl::OkStatus();
  }
  if (value.size() > 4 * max_length) {
    return InvalidField(field, StrCat("is longer than ", max_length, " characters"));
  }
  int64_t length = Utf8Length(value);
  if (length < 0) return InvalidField(field, "is not valid UTF-8");
  if (static_cast<size_t>(length) > max_length) {
    return InvalidField(field, StrCat("is longer than ", max_length, " characters"));
  }
  for (unsigned char c : value) {
    if (c < 0x20 || c == 0x7F) return InvalidField(field, "contains control characters");
  }
  return absl::OkStatus();
}

absl::Status ValidateOpen(const OpenAccountCommand& command) {
  const std::string& number = command.account_number;
  if (number.empty()) return InvalidField("account_number", "is required");
  if (number.size() > kMaxAccountNumberLength) {
    return InvalidField("account_number",
                        StrCat("is longer than ", kMaxAccountNumberLength, " characters"));
  }
  for (char c : number) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != '/') {
      return InvalidField("account_number",
                          "may contain only letters A-Z, a-z, digits and - _ . /");
    }
  }
  RETURN_IF_ERROR(ValidateText("holder_name", command.holder_name, kMaxHolderNameLength, true));
  if (command.opening_minor_units < 0) {
    return InvalidField("opening_deposit.minor_units",
                        StrCat("must not be negative, got ", command.opening_minor_units));
  }
  return ValidateCurrency("opening_deposit.currency", command.currency);
}

absl::Status ValidateDeposit(const DepositCommand& command) {
  RETURN_IF_ERROR(ValidateAccountId("account_id", command.account_id));
  RETURN_IF_ERROR(ValidateAmount("amount", command.minor_units, command.currency));
  return ValidateText("reference", command.reference, kMaxReferenceLength, false);
}

absl::Status ValidateWithdrawal(const WithdrawalCommand& command) {
  return ValidateDeposit(command);
}

absl::Status ValidateClose(const CloseAccountCommand& command) {
  RETURN_IF_ERROR(ValidateAccountId("account_id", command.account_id));
  return ValidateText("reason", command.reason, kMaxReasonLength, false);
}

absl::Status ValidateTransfer(const TransferCommand& command) {
  RETURN_IF_ERROR(ValidateAccountId("from_account_id", command.from_account_id));
  RETURN_IF_ERROR(ValidateAccountId("to_account_id", command.to_account_id));
  if (command.from_account_id == command.to_account_id) {
    return InvalidField("to_account_id", "must differ from from_account_id");
  }
  RETURN_IF_ERROR(ValidateAmount("amount", command.minor_units, command.currency));
  return ValidateText("reference", command.reference, kMaxReferenceLength, false);
}

absl::Status ApplyAccountEvent(AccountState& state, std::string_view type,
                               const google::protobuf::Message& payload) {
  if (type == kAccountOpened) {
    const auto& e = static_cast<const v1::AccountOpened&>(payload);
    state.account_id = e.account_id();
    state.account_number = e.account_number();
    state.currency = e.opening_deposit().currency();
    state.balance = e.opening_deposit().minor_units();
  } else if (type == kDepositMade) {
    state.balance += static_cast<const v1::DepositMade&>(payload).amount().minor_units();
  } else if (type == kWithdrawalMade) {
    state.balance -= static_cast<const v1::WithdrawalMade&>(payload).amount().minor_units();
  } else if (type == kTransferDebited) {
    state.balance -= static_cast<const v1::TransferDebited&>(payload).amount().minor_units();
  } else if (type == kTransferCredited) {
    state.balance += static_cast<const v1::TransferCredited&>(payload).amount().minor_units();
  } else if (type == kAccountClosed) {
    state.closed = true;
  } else {
    return absl::InvalidArgumentError(StrCat("account stream holds unknown event ", type));
  }
  ++state.version;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NewEvent>> DecideOpen(const AccountState& state,
                                                 const OpenAccountCommand& command) {
  if (state.exists()) {
    return absl::AlreadyExistsError(StrCat("account ", command.account_id, " exists"));
  }
  auto event = std::make_unique<v1::AccountOpened>();
  event->set_account_id(command.account_id);
  event->set_account_number(command.account_number);
  event->set_holder_name(command.holder_name);
  event->set_allocated_opening_deposit(
      MakeMoney(command.opening_minor_units, command.currency).release());
  std::vector<NewEvent> events;
  events.push_back(Event(kAccountOpened, kAccountOpenedVersion, std::move(event)));
  return events;
}

absl::StatusOr<std::vector<NewEvent>> DecideDeposit(const AccountState& state,
                                                    const DepositCommand& command) {
  RETURN_IF_ERROR(RequireOpen(state, command.account_id));
  RETURN_IF_ERROR(RequireCurrency(state, command.currency));
  if (!CheckedAdd(state.balance, command.minor_units)) {
    return absl::FailedPreconditionError(StrCat("a deposit of ", command.minor_units,
                                                " would overflow the balance of ", state.balance,
                                                " ", state.currency));
  }
  auto event = std::make_unique<v1::DepositMade>();
  event->set_account_id(command.account_id);
  event->set_allocated_amount(MakeMoney(command.minor_units, command.currency).release());
  event->set_reference(command.reference);
  std::vector<NewEvent> events;
  events.push_back(Event(kDepositMade, kDepositMadeVersion, std::move(event)));
  return events;
}

absl::StatusOr<std::vector<NewEvent>> DecideWithdrawal(const AccountState& state,
                                                       const WithdrawalCommand& command) {
  RETURN_IF_ERROR(RequireOpen(state, command.account_id));
  RETURN_IF_ERROR(RequireCurrency(state, command.currency));
  if (command.minor_units > state.balance) {
    return absl::FailedPreconditionError(StrCat("insufficient funds: balance is ", state.balance,
                                                ", withdrawal amount is ", command.minor_units,
                                                " (", state.currency, " minor units)"));
  }
  auto event = std::make_unique<v1::WithdrawalMade>();
  event->set_account_id(command.account_id);
  event->set_allocated_amount(MakeMoney(command.minor_units, command.currency).release());
  event->set_reference(command.reference);
  std::vector<NewEvent> events;
  events.push_back(Event(kWithdrawalMade, kWithdrawalMadeVersion, std::move(event)));
  return events;
}

absl::StatusOr<std::vector<NewEvent>> DecideClose(const AccountState& state,
                                                  const CloseAccountCommand& command) {
  RETURN_IF_ERROR(RequireOpen(state, command.account_id));
  if (state.balance != 0) {
    return absl::FailedPreconditionError(
        StrCat("account ", command.account_id, " has a balance of ", state.balance, " ",
               state.currency, "; only a zero balance can be closed"));
  }
  auto event = std::make_unique<v1::AccountClosed>();
  event->set_account_id(command.account_id);
  event->set_reason(command.reason);
  std::vector<NewEvent> events;
  events.push_back(Event(kAccountClosed, kAccountClosedVersion, std::move(event)));
  return events;
}

absl::StatusOr<TransferEvents> DecideTransfer(const AccountState& from, const AccountState& to,
                                              const TransferCommand& command) {
  if (!from.exists()) {
    return absl::NotFoundError(
        StrCat("from_account_id: account ", command.from_account_id, " does not exist"));
  }
  if (!to.exists()) {
    return absl::NotFoundError(
        StrCat("to_account_id: account ", command.to_account_id, " does not exist"));
  }
  if (from.closed) {
    return absl::FailedPreconditionError(
        StrCat("account ", command.from_account_id, " is closed and cannot send"));
  }
  if (to.closed) {
    return absl::FailedPreconditionError(
        StrCat("account ", command.to_account_id, " is closed and cannot receive"));
  }
  if (from.currency != to.currency) {
    return absl::FailedPreconditionError(StrCat("accounts hold different currencies (",
                                                from.currency, " and ", to.currency,
                                                "); conversion is not supported"));
  }
  RETURN_IF_ERROR(RequireCurrency(from, command.currency));
  if (command.minor_units > from.balance) {
    return absl::FailedPreconditionError(StrCat("insufficient funds: balance is ", from.balance,
                                                ", transfer amount is ", command.minor_units, " (",
                                                from.currency, " minor units)"));
  }
  if (!CheckedAdd(to.balance, command.minor_units)) {
    return absl::FailedPreconditionError(
        StrCat("the transfer would overflow the balance of ", command.to_account_id));
  }
  auto debit = std::make_unique<v1::TransferDebited>();
  debit->set_transfer_id(command.transfer_id);
  debit->set_account_id(command.from_account_id);
  debit->set_to_account_id(command.to_account_id);
  debit->set_allocated_amount(MakeMoney(command.minor_units, command.currency).release());
  debit->set_reference(command.reference);
  auto credit = std::make_unique<v1::TransferCredited>();
  credit->set_transfer_id(command.transfer_id);
  credit->set_account_id(command.to_account_id);
  credit->set_from_account_id(command.from_account_id);
  credit->set_allocated_amount(MakeMoney(command.minor_units, command.currency).release());
  credit->set_reference(command.reference);
  return TransferEvents{Event(kTransferDebited, kTransferVersion, std::move(debit)),
                        Event(kTransferCredited, kTransferVersion, std::move(credit))};
}

NewEvent AccountNumberReservation(const OpenAccountCommand& command) {
  auto event = std::make_unique<v1::AccountNumberReserved>();
  event->set_account_number(command.account_number);
  event->set_account_id(command.account_id);
  return Event(kAccountNumberReserved, kAccountNumberReservedVersion, std::move(event));
}

}  // namespace fidelis
