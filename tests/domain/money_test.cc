#include "domain/money.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace fidelis {
namespace {

TEST(MoneyTest, KnowsIsoCurrenciesOnly) {
  EXPECT_TRUE(IsKnownCurrency("EUR"));
  EXPECT_TRUE(IsKnownCurrency("JPY"));
  EXPECT_FALSE(IsKnownCurrency("eur"));
  EXPECT_FALSE(IsKnownCurrency("XXX"));
  EXPECT_FALSE(IsKnownCurrency("EURO"));
  EXPECT_FALSE(IsKnownCurrency(""));
  EXPECT_EQ(MinorUnitExponent("JPY"), 0);
  EXPECT_EQ(MinorUnitExponent("KWD"), 3);
  EXPECT_EQ(MinorUnitExponent("EUR"), 2);
}

TEST(MoneyTest, ZeroAndNegativeAmountsAreRejectedNamingTheField) {
  absl::Status zero = ValidatePositiveAmount("amount.minor_units", 0);
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(zero.message().find("amount.minor_units"), absl::string_view::npos);
  EXPECT_CODE(ValidatePositiveAmount("amount.minor_units", -5), kInvalidArgument);
  EXPECT_CODE(ValidatePositiveAmount("x", std::numeric_limits<int64_t>::min()), kInvalidArgument);
  EXPECT_OK(ValidatePositiveAmount("x", 1));
  EXPECT_OK(ValidatePositiveAmount("x", std::numeric_limits<int64_t>::max()));
}

TEST(MoneyTest, CheckedAddDetectsOverflow) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(CheckedAdd(1, 2), 3);
  EXPECT_EQ(CheckedAdd(max - 1, 1), max);
  EXPECT_FALSE(CheckedAdd(max, 1).has_value());
  EXPECT_FALSE(CheckedAdd(std::numeric_limits<int64_t>::min(), -1).has_value());
}

TEST(MoneyTest, RoundingIsHalfToEvenOnTheWrittenDecimal) {
  EXPECT_EQ(*RoundUnitsToMinor(0.125, "EUR"), 12);   // Half: to even.
  EXPECT_EQ(*RoundUnitsToMinor(0.135, "EUR"), 14);   // Half: to even.
  EXPECT_EQ(*RoundUnitsToMinor(2.675, "EUR"), 268);  // Binary 2.67499..., written 2.675.
  EXPECT_EQ(*RoundUnitsToMinor(1.005, "EUR"), 100);
  EXPECT_EQ(*RoundUnitsToMinor(0.1251, "EUR"), 13);  // Above half.
  EXPECT_EQ(*RoundUnitsToMinor(-0.125, "EUR"), -12);
  EXPECT_EQ(*RoundUnitsToMinor(12.5, "JPY"), 12);
  EXPECT_EQ(*RoundUnitsToMinor(13.5, "JPY"), 14);
  EXPECT_EQ(*RoundUnitsToMinor(1.0005, "KWD"), 1000);
  EXPECT_EQ(*RoundUnitsToMinor(19.99, "EUR"), 1999);
  EXPECT_EQ(*RoundUnitsToMinor(0, "EUR"), 0);
}

TEST(MoneyTest, RoundingRejectsNonFiniteAndHugeValues) {
  EXPECT_CODE(RoundUnitsToMinor(std::nan(""), "EUR"), kInvalidArgument);
  EXPECT_CODE(RoundUnitsToMinor(INFINITY, "EUR"), kInvalidArgument);
  EXPECT_CODE(RoundUnitsToMinor(1e300, "EUR"), kInvalidArgument);
  EXPECT_CODE(RoundUnitsToMinor(9.3e16, "EUR"), kInvalidArgument);  // 9.3e18 cents > int64.
}

}  // namespace
}  // namespace fidelis
