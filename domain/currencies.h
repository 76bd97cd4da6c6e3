// The ISO 4217 currency table: every active alphabetic code and its number of minor-unit digits.
// The one copy shared by the server (domain/money.h) and the command-line clients, which parse
// and print amounts with it. Plain C++ with no dependencies, so that clients can link it
// without the domain.
#pragma once

#include <string_view>

namespace fidelis {

struct CurrencyInfo {
  const char* code;  // "EUR"
  int exponent;      // Minor-unit digits: 2 for EUR, 0 for JPY, 3 for KWD.
};

// The entry of an active ISO 4217 code (exactly three upper-case letters), or null.
// Thread-safe: the table is constant.
const CurrencyInfo* FindCurrency(std::string_view code);

}  // namespace fidelis
