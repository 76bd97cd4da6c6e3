#include "domain/money.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/escaping.h"
#include "domain/currencies.h"
#include "domain/errors.h"
#include "domain/strings.h"

namespace fidelis {

bool IsKnownCurrency(std::string_view code) { return FindCurrency(code) != nullptr; }

int MinorUnitExponent(std::string_view code) {
  const CurrencyInfo* info = FindCurrency(code);
  return info == nullptr ? 2 : info->exponent;
}

absl::Status ValidateCurrency(std::string_view field, std::string_view code) {
  if (code.empty()) return InvalidField(field, "is required (an ISO 4217 code such as EUR)");
  if (!IsKnownCurrency(code)) {
    return InvalidField(field, StrCat("'", absl::CEscape(std::string(code).substr(0, 16)),
                                      "' is not a known ISO 4217 currency code"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePositiveAmount(std::string_view field, int64_t minor_units) {
  if (minor_units <= 0) {
    return InvalidField(field, StrCat("must be positive, got ", minor_units));
  }
  return absl::OkStatus();
}

std::optional<int64_t> CheckedAdd(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

absl::StatusOr<int64_t> RoundUnitsToMinor(double units, std::string_view currency) {
  if (!std::isfinite(units)) {
    return absl::InvalidArgumentError("amount is not a finite number");
  }
  if (std::fabs(units) >= 1e17) {
    return absl::InvalidArgumentError(StrCat("amount ", units, " does not fit in int64"));
  }
  // Round the decimal the writer meant, not its binary approximation: the shortest decimal
  // that round-trips (2.675, not 2.67499999...) is rounded half to even at the exponent.
  char buf[64];
  auto [end, ec] =
      std::to_chars(buf, buf + sizeof(buf), std::fabs(units), std::chars_format::fixed);
  if (ec != std::errc()) return absl::InternalError("cannot format amount");
  std::string_view text(buf, end - buf);
  size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  const int exponent = MinorUnitExponent(currency);
  std::string digits(whole);
  for (int i = 0; i < exponent; ++i) {
    digits.push_back(i < static_cast<int>(frac.size()) ? frac[i] : '0');
  }
  std::string_view rest = frac.size() > static_cast<size_t>(exponent) ? frac.substr(exponent) : "";
  __int128 value = 0;
  for (char c : digits) value = value * 10 + (c - '0');
  if (!rest.empty()) {
    bool above_half = rest[0] > '5' ||
                      (rest[0] == '5' && rest.find_first_not_of('0', 1) != std::string_view::npos);
    bool exactly_half = rest[0] == '5' && !above_half;
    if (above_half || (exactly_half && value % 2 == 1)) ++value;
  }
  if (units < 0) value = -value;
  if (value > std::numeric_limits<int64_t>::max() || value < std::numeric_limits<int64_t>::min()) {
    return absl::InvalidArgumentError(StrCat("amount ", units, " does not fit in int64"));
  }
  return static_cast<int64_t>(value);
}

}  // namespace fidelis
