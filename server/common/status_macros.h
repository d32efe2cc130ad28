#ifndef RAWFEAT_SERVER_COMMON_STATUS_MACROS_H_
#define RAWFEAT_SERVER_COMMON_STATUS_MACROS_H_

// RETURN_IF_ERROR / ASSIGN_OR_RETURN: Debian's Abseil 20220623 has neither.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RAWFEAT_CONCAT_INNER_(a, b) a##b
#define RAWFEAT_CONCAT_(a, b) RAWFEAT_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the caller if not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status rawfeat_status_ = (expr);           \
    if (!rawfeat_status_.ok()) return rawfeat_status_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>); on
// error returns its status, else assigns the value to `lhs` (which may be a
// declaration such as `auto x`).
#define ASSIGN_OR_RETURN(lhs, expr)                                            \
  RAWFEAT_ASSIGN_OR_RETURN_IMPL_(RAWFEAT_CONCAT_(rawfeat_sor_, __LINE__), lhs, \
                                 expr)

#define RAWFEAT_ASSIGN_OR_RETURN_IMPL_(sor, lhs, expr) \
  auto sor = (expr);                                   \
  if (!sor.ok()) return std::move(sor).status();       \
  lhs = std::move(sor).value()

#endif  // RAWFEAT_SERVER_COMMON_STATUS_MACROS_H_
