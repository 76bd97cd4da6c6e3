// Helpers shared by the Fidelis command-line clients: channels, money parsing and formatting
// without floating point, and printing statuses. Clients depend on the generated API and the
// currency table (domain/currencies.h, plain C++) only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"

namespace fidelis::clients {

struct ConnectOptions {
  // PEM file of the CA that signed the server's certificate; enables TLS.
  std::string tls_ca_file;
  // PEM client certificate and key, for servers that require them (mTLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  // Overrides the name checked against the server's certificate.
  std::string tls_server_name;
};

// A channel to `address` (host:port): plaintext, or TLS when a CA file is given. Exits the
// process with status 2 when a TLS file cannot be read.
std::shared_ptr<grpc::Channel> Connect(const std::string& address,
                                       const ConnectOptions& options = {});

// The token from `token`, else from the file `token_file`, else from $FIDELIS_TOKEN.
std::string ResolveToken(const std::string& token, const std::string& token_file);

// Number of minor-unit digits of a currency, from the ISO 4217 table the server uses
// (domain/currencies.h): 2 for EUR, 0 for JPY, 3 for KWD; 2 for a code it does not know.
int CurrencyExponent(const std::string& currency);

// Parses a decimal amount such as "12.34" into minor units of `currency`, exactly.
// nullopt when the text is not a plain decimal, has more fraction digits than the currency
// allows, or does not fit in int64.
std::optional<int64_t> ParseAmount(const std::string& text, const std::string& currency);

// Formats minor units as a decimal with the currency's digits, e.g. 1234 EUR -> "12.34".
std::string FormatAmount(int64_t minor_units, const std::string& currency);

// "1,234,567".
std::string WithThousands(uint64_t value);

// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND.
const char* CodeName(grpc::StatusCode code);

// Prints "error: CODE: message" plus any field violations to stderr; returns the exit code
// for the status (0 for OK, 1 otherwise).
int ReportStatus(const grpc::Status& status);

}  // namespace fidelis::clients
