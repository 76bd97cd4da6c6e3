#include "domain/account.h"

#include <limits>

#include "domain/errors.h"
#include "domain/event_types.h"
#include "fidelis/v1/events.pb.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace fidelis {
namespace {

constexpr char kId[] = "0123456789abcdef0123456789abcdef";
constexpr char kOther[] = "fedcba9876543210fedcba9876543210";

OpenAccountCommand ValidOpen() {
  return OpenAccountCommand{kId, "NL91ABNA0417164300", "Ada Lovelace", 1000, "EUR"};
}

AccountState Evolve(AccountState state, const std::vector<NewEvent>& events) {
  for (const NewEvent& e : events) EXPECT_OK(ApplyAccountEvent(state, e.type, *e.payload));
  return state;
}

AccountState OpenedWith(int64_t balance, const char* id = kId) {
  OpenAccountCommand open = ValidOpen();
  open.account_id = id;
  open.opening_minor_units = balance;
  return Evolve(AccountState{}, *DecideOpen(AccountState{}, open));
}

std::string Field(const absl::Status& status) { return FieldOf(status).value_or(""); }

TEST(AccountTest, OpenProducesAccountOpenedAtVersionOne) {
  ASSERT_OK(ValidateOpen(ValidOpen()));
  auto events = DecideOpen(AccountState{}, ValidOpen());
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].type, kAccountOpened);
  AccountState state = Evolve(AccountState{}, *events);
  EXPECT_EQ(state.version, 1);
  EXPECT_EQ(state.balance, 1000);
  EXPECT_EQ(state.currency, "EUR");
  EXPECT_FALSE(state.closed);
}

TEST(AccountTest, OpeningAnExistingAccountIsAlreadyExists) {
  EXPECT_CODE(DecideOpen(OpenedWith(0), ValidOpen()), kAlreadyExists);
}

TEST(AccountTest, OpenValidationNamesTheField) {
  OpenAccountCommand c = ValidOpen();
  c.account_number = "";
  EXPECT_EQ(Field(ValidateOpen(c)), "account_number");
  for (const char* bad : {"NL 91", "ACC:001", "ACC#1", "Zoë-1", "tab\t1", "a\\b"}) {
    c.account_number = bad;
    EXPECT_EQ(Field(ValidateOpen(c)), "account_number") << bad;
  }
  c.account_number = std::string(35, '1');
  EXPECT_EQ(Field(ValidateOpen(c)), "account_number");
  for (const std::string& good : {std::string("ACC-001"), std::string("NL91-ABNA-0417"),
                                  std::string("acc_2.b/7"), std::string(34, '9')}) {
    c.account_number = good;
    EXPECT_TRUE(ValidateOpen(c).ok()) << good << ": " << ValidateOpen(c);
  }
  c = ValidOpen();
  c.holder_name = "";
  EXPECT_EQ(Field(ValidateOpen(c)), "holder_name");
  c.holder_name = "bad \xff utf8";
  EXPECT_EQ(Field(ValidateOpen(c)), "holder_name");
  c.holder_name = "tab\there";
  EXPECT_EQ(Field(ValidateOpen(c)), "holder_name");
  c.holder_name = std::string(201, 'a');
  EXPECT_EQ(Field(ValidateOpen(c)), "holder_name");
  c.holder_name = "Zoë Ñúñez 山田";
  EXPECT_OK(ValidateOpen(c));
  c = ValidOpen();
  c.opening_minor_units = -1;
  EXPECT_EQ(Field(ValidateOpen(c)), "opening_deposit.minor_units");
  c = ValidOpen();
  c.opening_minor_units = 0;
  EXPECT_OK(ValidateOpen(c));
  c.currency = "ABC";
  EXPECT_EQ(Field(ValidateOpen(c)), "opening_deposit.currency");
  c.currency = "";
  EXPECT_EQ(Field(ValidateOpen(c)), "opening_deposit.currency");
}

TEST(AccountTest, DepositValidationRejectsZeroNegativeAndBadIds) {
  DepositCommand d{kId, 0, "EUR", ""};
  EXPECT_EQ(Field(ValidateDeposit(d)), "amount.minor_units");
  d.minor_units = -100;
  EXPECT_EQ(Field(ValidateDeposit(d)), "amount.minor_units");
  d.minor_units = 100;
  d.currency = "XYZ";
  EXPECT_EQ(Field(ValidateDeposit(d)), "amount.currency");
  d.currency = "EUR";
  d.account_id = "not-an-id";
  EXPECT_EQ(Field(ValidateDeposit(d)), "account_id");
  d.account_id = "0123456789ABCDEF0123456789ABCDEF";  // Upper case is not an id we issue.
  EXPECT_EQ(Field(ValidateDeposit(d)), "account_id");
  d.account_id = kId;
  d.reference = std::string(141, 'r');
  EXPECT_EQ(Field(ValidateDeposit(d)), "reference");
  d.reference = "invoice 42";
  EXPECT_OK(ValidateDeposit(d));
}

TEST(AccountTest, DepositOnUnknownAccountIsNotFound) {
  EXPECT_CODE(DecideDeposit(AccountState{}, DepositCommand{kId, 1, "EUR", ""}), kNotFound);
}

TEST(AccountTest, DepositInAnotherCurrencyIsAFailedPrecondition) {
  EXPECT_CODE(DecideDeposit(OpenedWith(0), DepositCommand{kId, 1, "USD", ""}), kFailedPrecondition);
}

TEST(AccountTest, DepositThatWouldOverflowIsRejected) {
  AccountState state = OpenedWith(std::numeric_limits<int64_t>::max() - 10);
  EXPECT_OK(DecideDeposit(state, DepositCommand{kId, 10, "EUR", ""}));
  EXPECT_CODE(DecideDeposit(state, DepositCommand{kId, 11, "EUR", ""}), kFailedPrecondition);
}

TEST(AccountTest, WithdrawalBeyondBalanceIsRejectedNamingBalanceAndAmount) {
  AccountState state = OpenedWith(500);
  auto result = DecideWithdrawal(state, WithdrawalCommand{kId, 501, "EUR", ""});
  EXPECT_CODE(result, kFailedPrecondition);
  EXPECT_NE(result.status().message().find("500"), absl::string_view::npos);
  EXPECT_NE(result.status().message().find("501"), absl::string_view::npos);
  auto exact = DecideWithdrawal(state, WithdrawalCommand{kId, 500, "EUR", ""});
  ASSERT_OK(exact);
  EXPECT_EQ(Evolve(state, *exact).balance, 0);
}

TEST(AccountTest, CloseNeedsAZeroBalance) {
  EXPECT_CODE(DecideClose(OpenedWith(1), CloseAccountCommand{kId, ""}), kFailedPrecondition);
  auto closed = DecideClose(OpenedWith(0), CloseAccountCommand{kId, "moving abroad"});
  ASSERT_OK(closed);
  EXPECT_TRUE(Evolve(OpenedWith(0), *closed).closed);
}

TEST(AccountTest, AClosedAccountTakesNoFurtherCommands) {
  AccountState state = OpenedWith(0);
  state = Evolve(state, *DecideClose(state, CloseAccountCommand{kId, ""}));
  EXPECT_CODE(DecideDeposit(state, DepositCommand{kId, 1, "EUR", ""}), kFailedPrecondition);
  EXPECT_CODE(DecideWithdrawal(state, WithdrawalCommand{kId, 1, "EUR", ""}), kFailedPrecondition);
  EXPECT_CODE(DecideClose(state, CloseAccountCommand{kId, ""}), kFailedPrecondition);
}

TEST(AccountTest, TransferRules) {
  TransferCommand t{"t1", kId, kOther, 100, "EUR", ""};
  ASSERT_OK(ValidateTransfer(t));
  TransferCommand same = t;
  same.to_account_id = kId;
  EXPECT_EQ(Field(ValidateTransfer(same)), "to_account_id");
  AccountState from = OpenedWith(150), to = OpenedWith(0, kOther);
  auto events = DecideTransfer(from, to, t);
  ASSERT_OK(events);
  EXPECT_EQ(events->debit.type, kTransferDebited);
  EXPECT_EQ(events->credit.type, kTransferCredited);
  ASSERT_OK(ApplyAccountEvent(from, events->debit.type, *events->debit.payload));
  ASSERT_OK(ApplyAccountEvent(to, events->credit.type, *events->credit.payload));
  EXPECT_EQ(from.balance, 50);
  EXPECT_EQ(to.balance, 100);
  EXPECT_CODE(DecideTransfer(from, to, t), kFailedPrecondition);  // Only 50 left.
  auto missing = DecideTransfer(from, AccountState{}, t);
  EXPECT_CODE(missing, kNotFound);
  EXPECT_NE(missing.status().message().find("to_account_id"), absl::string_view::npos);
  AccountState usd = OpenedWith(0, kOther);
  usd.currency = "USD";
  EXPECT_CODE(DecideTransfer(OpenedWith(500), usd, t), kFailedPrecondition);
  AccountState closed = OpenedWith(0, kOther);
  closed.closed = true;
  EXPECT_CODE(DecideTransfer(OpenedWith(500), closed, t), kFailedPrecondition);
}

}  // namespace
}  // namespace fidelis
