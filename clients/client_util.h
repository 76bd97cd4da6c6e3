// Helpers shared by the Fidelis command-line clients: channels, money parsing and formatting
// without floating point, and printing statuses. Clients depend on the generated API only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"

namespace fidelis::clients {

// An insecure channel to `address` (host:port).
std::shared_ptr<grpc::Channel> Connect(const std::string& address);

// Number of minor-unit digits of a currency (2 unless known otherwise: JPY 0, KWD 3, ...).
int CurrencyExponent(const std::string& currency);

// Parses a decimal amount such as "12.34" into minor units of `currency`, exactly.
// nullopt when the text is not a plain decimal, has more fraction digits than the currency
// allows, or does not fit in int64.
std::optional<int64_t> ParseAmount(const std::string& text, const std::string& currency);

// Formats minor units as a decimal with the currency's digits, e.g. 1234 EUR -> "12.34".
std::string FormatAmount(int64_t minor_units, const std::string& currency);

// "1,234,567".
std::string WithThousands(uint64_t value);

// Prints "error: CODE: message" plus any field violations to stderr; returns the exit code
// for the status (0 for OK, 1 otherwise).
int ReportStatus(const grpc::Status& status);

}  // namespace fidelis::clients
