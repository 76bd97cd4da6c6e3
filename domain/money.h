// Money rules: ISO 4217 currency codes, positive amounts in integer minor units, and
// overflow-checked arithmetic. No floating point anywhere on the money path except the
// one-way conversion of retired schema-1 payloads (RoundUnitsToMinor).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fidelis {

// True for an active ISO 4217 alphabetic code such as "EUR" (upper case, exactly three).
bool IsKnownCurrency(std::string_view code);

// Number of minor units per major unit for a known currency (2 for EUR, 0 for JPY, 3 for KWD).
int MinorUnitExponent(std::string_view code);

// OK when `code` is a known currency; otherwise INVALID_ARGUMENT naming `field`.
absl::Status ValidateCurrency(std::string_view field, std::string_view code);

// OK when `minor_units` > 0; otherwise INVALID_ARGUMENT naming `field`.
absl::Status ValidatePositiveAmount(std::string_view field, int64_t minor_units);

// a + b, or nullopt when the sum leaves int64.
std::optional<int64_t> CheckedAdd(int64_t a, int64_t b);

// Converts a floating-point number of major units to minor units, rounding half to even
// (banker's rounding) at the currency's exponent. INVALID_ARGUMENT for NaN, infinities and
// values outside int64.
absl::StatusOr<int64_t> RoundUnitsToMinor(double units, std::string_view currency);

}  // namespace fidelis
