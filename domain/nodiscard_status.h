// Makes every ignored absl::Status and absl::StatusOr<T> a compiler warning (an error under
// -Werror), with g++ and clang (and so in clang-tidy) alike.
//
// Debian 12's Abseil (20220623) does not mark Status [[nodiscard]]. Redeclaring a class with
// the attribute before its definition is allowed ([dcl.attr.nodiscard]) and applies it to the
// class. The build force-includes this header into every Fidelis source file (the
// fidelis_warnings target in the top-level CMakeLists.txt), ahead of any Abseil header; code
// that means to drop a status says so with IgnoreError().
#pragma once

#include "absl/base/config.h"

// NOLINTBEGIN(bugprone-forward-declaration-namespace): the definitions follow in Abseil.
namespace absl {
ABSL_NAMESPACE_BEGIN
class [[nodiscard]] Status;
template <typename T>
class [[nodiscard]] StatusOr;
ABSL_NAMESPACE_END
}  // namespace absl
// NOLINTEND(bugprone-forward-declaration-namespace)
