// libFuzzer target: command validation and decision on arbitrary protobuf requests. The input
// selects a request type and an account state, and the rest is parsed as that request. Every
// command is validated and, when valid, decided against the state; decided events are applied.
// Must never crash and never produce a negative balance.
#include <cstddef>
#include <cstdint>
#include <string>

#include "domain/account.h"
#include "fidelis/v1/accounts.pb.h"

namespace {

using namespace fidelis;

AccountState StateFor(uint8_t selector) {
  AccountState state;
  if (selector % 4 == 0) return state;  // No such account.
  state.version = 3;
  state.account_id = "0123456789abcdef0123456789abcdef";
  state.account_number = "N1";
  state.currency = selector % 4 == 3 ? "JPY" : "EUR";
  state.balance = selector % 4 == 1 ? 0 : INT64_MAX - 1000;
  state.closed = selector % 8 == 7;
  return state;
}

void ApplyAll(AccountState state, const absl::StatusOr<std::vector<NewEvent>>& events) {
  if (!events.ok()) return;
  for (const NewEvent& e : *events) {
    if (!ApplyAccountEvent(state, e.type, *e.payload).ok()) __builtin_trap();
    if (state.balance < 0) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const AccountState state = StateFor(data[1]);
  const std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (data[0] % 5) {
    case 0: {
      v1::OpenAccountRequest r;
      if (!r.ParseFromArray(bytes.data(), bytes.size())) return 0;
      OpenAccountCommand c{"0123456789abcdef0123456789abcdef", r.account_number(), r.holder_name(),
                           r.opening_deposit().minor_units(), r.opening_deposit().currency()};
      if (ValidateOpen(c).ok()) {
        ApplyAll(AccountState{}, DecideOpen(AccountState{}, c));
        (void)DecideOpen(state, c);
      }
      break;
    }
    case 1:
    case 2: {
      v1::MakeDepositRequest r;
      if (!r.ParseFromArray(bytes.data(), bytes.size())) return 0;
      DepositCommand c{r.account_id(), r.amount().minor_units(), r.amount().currency(),
                       r.reference()};
      if (data[0] % 5 == 1 && ValidateDeposit(c).ok()) ApplyAll(state, DecideDeposit(state, c));
      if (data[0] % 5 == 2 && ValidateWithdrawal(c).ok()) {
        ApplyAll(state, DecideWithdrawal(state, c));
      }
      break;
    }
    case 3: {
      v1::CloseAccountRequest r;
      if (!r.ParseFromArray(bytes.data(), bytes.size())) return 0;
      CloseAccountCommand c{r.account_id(), r.reason()};
      if (ValidateClose(c).ok()) ApplyAll(state, DecideClose(state, c));
      break;
    }
    case 4: {
      v1::TransferFundsRequest r;
      if (!r.ParseFromArray(bytes.data(), bytes.size())) return 0;
      TransferCommand c{"t",
                        r.from_account_id(),
                        r.to_account_id(),
                        r.amount().minor_units(),
                        r.amount().currency(),
                        r.reference()};
      if (!ValidateTransfer(c).ok()) return 0;
      AccountState to = StateFor(data[1] >> 2);
      auto events = DecideTransfer(state, to, c);
      if (events.ok()) {
        AccountState from = state;
        if (!ApplyAccountEvent(from, events->debit.type, *events->debit.payload).ok() ||
            !ApplyAccountEvent(to, events->credit.type, *events->credit.payload).ok() ||
            from.balance < 0 || to.balance < 0) {
          __builtin_trap();
        }
      }
      break;
    }
  }
  return 0;
}
