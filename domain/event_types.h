// Names that are part of the log's format: event type names, their current schema versions,
// and how stream ids are built. Changing any of these strings breaks existing logs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fidelis {

inline constexpr std::string_view kAccountCategory = "Account";
inline constexpr std::string_view kAccountNumberCategory = "AccountNumber";

inline constexpr std::string_view kAccountOpened = "AccountOpened";
inline constexpr std::string_view kDepositMade = "DepositMade";
inline constexpr std::string_view kWithdrawalMade = "WithdrawalMade";
inline constexpr std::string_view kAccountClosed = "AccountClosed";
inline constexpr std::string_view kTransferDebited = "TransferDebited";
inline constexpr std::string_view kTransferCredited = "TransferCredited";
inline constexpr std::string_view kAccountNumberReserved = "AccountNumberReserved";

// Schema versions written today. Version 1 of the money-carrying events is retired.
inline constexpr uint32_t kAccountOpenedVersion = 2;
inline constexpr uint32_t kDepositMadeVersion = 2;
inline constexpr uint32_t kWithdrawalMadeVersion = 2;
inline constexpr uint32_t kAccountClosedVersion = 1;
inline constexpr uint32_t kTransferVersion = 1;
inline constexpr uint32_t kAccountNumberReservedVersion = 1;

// "Account-<account_id>".
std::string AccountStream(std::string_view account_id);
// "AccountNumber-<number>".
std::string AccountNumberStream(std::string_view account_number);
// The category of a stream: everything before the first '-', or the whole id.
std::string_view CategoryOf(std::string_view stream_id);
// The id after the category's '-', or empty.
std::string_view StreamEntityId(std::string_view stream_id);

}  // namespace fidelis
