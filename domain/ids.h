// Identifiers the service issues: account ids, transfer ids and rebuild ids. An id is 32
// lower-case hex digits (128 bits), the format account ids are validated against
// (domain/account.h, ValidateAccountId).
#pragma once

#include <cstdint>
#include <string>

namespace fidelis {

// 32 lower-case hex digits from a per-thread generator seeded from the operating system's
// random source. Thread-safe.
std::string NewId();

// The 32 lower-case hex digits of two 64-bit words, low nibble first. Deterministic: the
// offline seeder makes reproducible ids with it.
std::string HexId(uint64_t a, uint64_t b);

}  // namespace fidelis
