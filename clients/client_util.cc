#include "clients/client_util.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "domain/currencies.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace fidelis::clients {

const char* CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  int index = static_cast<int>(code);
  return index >= 0 && index <= 16 ? kNames[index] : "UNKNOWN";
}

namespace {

std::string ReadFileOrExit(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "error: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

std::shared_ptr<grpc::Channel> Connect(const std::string& address, const ConnectOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (options.tls_ca_file.empty()) {
    return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFileOrExit(options.tls_ca_file);
  if (!options.tls_cert_file.empty()) {
    ssl.pem_cert_chain = ReadFileOrExit(options.tls_cert_file);
    ssl.pem_private_key = ReadFileOrExit(options.tls_key_file);
  }
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
}

std::string ResolveToken(const std::string& token, const std::string& token_file) {
  if (!token.empty()) return token;
  if (!token_file.empty()) {
    std::string text = ReadFileOrExit(token_file);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
      text.erase(0, 1);
    }
    return text;
  }
  const char* env = std::getenv("FIDELIS_TOKEN");
  return env == nullptr ? "" : env;
}

int CurrencyExponent(const std::string& currency) {
  const CurrencyInfo* info = FindCurrency(currency);
  return info == nullptr ? 2 : info->exponent;
}

std::optional<int64_t> ParseAmount(const std::string& text, const std::string& currency) {
  const int exponent = CurrencyExponent(currency);
  size_t dot = text.find('.');
  std::string whole = text.substr(0, dot);
  std::string frac = dot == std::string::npos ? "" : text.substr(dot + 1);
  if (whole.empty() || static_cast<int>(frac.size()) > exponent) return std::nullopt;
  if (dot != std::string::npos && frac.empty()) return std::nullopt;
  frac.append(exponent - frac.size(), '0');
  __int128 value = 0;
  for (char c : whole + frac) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
    if (value > std::numeric_limits<int64_t>::max()) return std::nullopt;
  }
  return static_cast<int64_t>(value);
}

std::string FormatAmount(int64_t minor_units, const std::string& currency) {
  const int exponent = CurrencyExponent(currency);
  const bool negative = minor_units < 0;
  unsigned __int128 magnitude = negative ? -static_cast<__int128>(minor_units) : minor_units;
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  } while (magnitude > 0);
  if (exponent > 0) {
    if (static_cast<int>(digits.size()) <= exponent) {
      digits.insert(0, exponent + 1 - digits.size(), '0');
    }
    const size_t point = digits.size() - exponent;
    return absl::StrCat(negative ? "-" : "", absl::string_view(digits).substr(0, point), ".",
                        absl::string_view(digits).substr(point));
  }
  return absl::StrCat(negative ? "-" : "", digits);
}

std::string WithThousands(uint64_t value) {
  const std::string digits = std::to_string(value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

int ReportStatus(const grpc::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "error: %s: %s\n", CodeName(status.error_code()),
               status.error_message().c_str());
  google::rpc::Status details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const auto& any : details.details()) {
      google::rpc::BadRequest bad_request;
      if (any.UnpackTo(&bad_request)) {
        for (const auto& violation : bad_request.field_violations()) {
          std::fprintf(stderr, "  field %s: %s\n", violation.field().c_str(),
                       violation.description().c_str());
        }
      }
    }
  }
  return 1;
}

}  // namespace fidelis::clients
