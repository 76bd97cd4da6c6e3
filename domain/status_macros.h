// Small helpers for propagating absl::Status, which Debian 12's Abseil does not ship.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FIDELIS_CONCAT_INNER(a, b) a##b
#define FIDELIS_CONCAT(a, b) FIDELIS_CONCAT_INNER(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status fidelis_status_ = (expr);           \
    if (!fidelis_status_.ok()) return fidelis_status_; \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status on error, otherwise moves the
// value into `lhs`, which may be a declaration such as `auto x`.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL(FIDELIS_CONCAT(fidelis_statusor_, __LINE__), lhs, rexpr)
// `lhs` may be a declaration, which parentheses would break.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                          \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
