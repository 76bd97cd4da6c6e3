// String helpers: StrCat bridging std::string_view and Debian 12's absl::string_view, which
// are distinct types there, and JSON string quoting.
#pragma once

#include <cstdio>
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

// Appends `text` to `out` as a JSON string: quoted, with '"', '\\' and control characters
// escaped. Bytes from 0x80 up are copied as they are (UTF-8 stays UTF-8).
inline void AppendJsonString(std::string_view text, std::string* out) {
  out->push_back('"');
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(ch);
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (c < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
      out->append(buffer);
    } else {
      out->push_back(ch);
    }
  }
  out->push_back('"');
}

}  // namespace fidelis
