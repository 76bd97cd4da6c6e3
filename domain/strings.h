// String helpers that bridge std::string_view and Debian 12's absl::string_view, which are
// distinct types there.
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fidelis {

inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

template <typename T>
const T& StrArg(const T& value) {
  return value;
}
inline absl::string_view StrArg(std::string_view s) { return ToAbsl(s); }

// absl::StrCat that also takes std::string_view arguments.
template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(StrArg(args)...);
}

}  // namespace fidelis
