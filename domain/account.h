// The Account aggregate: its state, the commands it accepts, the rules that decide them, and
// how events evolve the state.
//
// Everything here is pure: a command is validated (shape only, no state), then decided against
// the current state, producing events or a status. Nothing is written here; the server appends
// the events and the log is the truth.
//
// Status codes returned:
//   INVALID_ARGUMENT    - the command is malformed; the status names the field (errors.h).
//   NOT_FOUND           - the account does not exist.
//   ALREADY_EXISTS      - the account exists already.
//   FAILED_PRECONDITION - a business rule: insufficient funds, closed account, currency
//                         mismatch, non-zero balance on close, overflowing balance.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace fidelis {

// Limits on request fields. Documented in the README.
inline constexpr size_t kMaxAccountNumberLength = 34;  // The IBAN maximum.
inline constexpr size_t kMaxHolderNameLength = 200;
inline constexpr size_t kMaxReferenceLength = 140;
inline constexpr size_t kMaxReasonLength = 500;
inline constexpr size_t kMaxIdLength = 128;  // command, correlation and causation ids.
inline constexpr size_t kAccountIdLength = 32;

struct AccountState {
  int64_t version = 0;  // Stream version of the last applied event; 0 = no such account.
  std::string account_id;
  std::string account_number;
  std::string currency;
  int64_t balance = 0;
  bool closed = false;

  bool exists() const { return version > 0; }
};

// An event the aggregate decided on, before the log gives it a position.
struct NewEvent {
  std::string type;
  uint32_t schema_version = 0;
  std::unique_ptr<google::protobuf::Message> payload;
};

// Applies one current-schema event of the account's stream to `state` and bumps its version.
// INVALID_ARGUMENT for a type the aggregate does not know.
absl::Status ApplyAccountEvent(AccountState& state, std::string_view type,
                               const google::protobuf::Message& payload);

struct OpenAccountCommand {
  std::string account_id;  // Chosen by the caller of Decide (the server generates it).
  std::string account_number;
  std::string holder_name;
  int64_t opening_minor_units = 0;  // May be zero.
  std::string currency;
};

struct DepositCommand {
  std::string account_id;
  int64_t minor_units = 0;
  std::string currency;
  std::string reference;
};

using WithdrawalCommand = DepositCommand;

struct CloseAccountCommand {
  std::string account_id;
  std::string reason;
};

struct TransferCommand {
  std::string transfer_id;
  std::string from_account_id;
  std::string to_account_id;
  int64_t minor_units = 0;
  std::string currency;
  std::string reference;
};

// Shape checks. INVALID_ARGUMENT naming the field, or OK.
absl::Status ValidateAccountId(std::string_view field, std::string_view account_id);
absl::Status ValidateText(std::string_view field, std::string_view value, size_t max_length,
                          bool required);
absl::Status ValidateOpen(const OpenAccountCommand& command);
absl::Status ValidateDeposit(const DepositCommand& command);
absl::Status ValidateWithdrawal(const WithdrawalCommand& command);
absl::Status ValidateClose(const CloseAccountCommand& command);
absl::Status ValidateTransfer(const TransferCommand& command);

// Decisions. `state` is the account's state at the version the events will be appended after.
absl::StatusOr<std::vector<NewEvent>> DecideOpen(const AccountState& state,
                                                 const OpenAccountCommand& command);
absl::StatusOr<std::vector<NewEvent>> DecideDeposit(const AccountState& state,
                                                    const DepositCommand& command);
absl::StatusOr<std::vector<NewEvent>> DecideWithdrawal(const AccountState& state,
                                                       const WithdrawalCommand& command);
absl::StatusOr<std::vector<NewEvent>> DecideClose(const AccountState& state,
                                                  const CloseAccountCommand& command);

// A transfer's two halves: the debit for `from`'s stream and the credit for `to`'s stream.
struct TransferEvents {
  NewEvent debit;
  NewEvent credit;
};
absl::StatusOr<TransferEvents> DecideTransfer(const AccountState& from, const AccountState& to,
                                              const TransferCommand& command);

// The event that reserves an account number (written to AccountNumberStream).
NewEvent AccountNumberReservation(const OpenAccountCommand& command);

}  // namespace fidelis
