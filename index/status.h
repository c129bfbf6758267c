// Status and Result<T>: the typed errors every lazyroot module returns.
// A Status is either OK or carries a code plus a message that names the
// object at fault ("layer sha256:ab12…: tar header at offset 1536: bad
// checksum"). errno appears only at the FUSE edge, exit codes only at the CLI.
// Value types; safe to copy between threads.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lazyroot {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // the caller's input (reference, flag, path) is malformed
  kNotFound,         // image, blob, platform, file does not exist
  kCorruption,       // stored or received bytes fail a check (digest, checksum, format)
  kIoError,          // a system call failed
  kUnsupported,      // valid but not handled (schema1, encrypted layer, …)
  kUnauthorized,     // the registry refused our credentials
  kNetwork,          // transport failure after retries
  kAborted,          // cancelled (signal, another error in a parallel task)
  kLimitExceeded,    // the input is over a budget (index/limits.h); the message names the limit to raise
};

class Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status Error(ErrorCode code, std::string message) { return Status(code, std::move(message)); }
  static Status InvalidArgument(std::string m) { return Status(ErrorCode::kInvalidArgument, std::move(m)); }
  static Status NotFound(std::string m) { return Status(ErrorCode::kNotFound, std::move(m)); }
  static Status Corruption(std::string m) { return Status(ErrorCode::kCorruption, std::move(m)); }
  static Status IoError(std::string m) { return Status(ErrorCode::kIoError, std::move(m)); }
  // An I/O error that appends strerror(err) to the message.
  static Status FromErrno(std::string m, int err);
  static Status Unsupported(std::string m) { return Status(ErrorCode::kUnsupported, std::move(m)); }
  static Status Unauthorized(std::string m) { return Status(ErrorCode::kUnauthorized, std::move(m)); }
  static Status Network(std::string m) { return Status(ErrorCode::kNetwork, std::move(m)); }
  static Status Aborted(std::string m) { return Status(ErrorCode::kAborted, std::move(m)); }
  static Status LimitExceeded(std::string m) { return Status(ErrorCode::kLimitExceeded, std::move(m)); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "context: message" with the same code; used to name the object at fault
  // as an error travels up ("layer sha256:…: " + inner).
  Status WithContext(std::string_view context) const;
  std::string ToString() const;

 private:
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

// `s` made safe to print on a terminal: control characters (C0, DEL, C1)
// and bytes that are not UTF-8 become \xNN; valid UTF-8 text and
// backslashes are kept, so applying it twice changes nothing. For names that
// come from outside (a file a VM created in a cached rootfs, a tar entry)
// before they reach a message: an escape sequence or a newline in one must
// not rewrite the user's terminal or forge a line of output.
std::string Displayable(std::string_view s);

}  // namespace lazyroot

// Early-return helpers; kept to two, both obvious.
#define LAZYROOT_RETURN_IF_ERROR(expr)          \
  do {                                          \
    ::lazyroot::Status _st = (expr);            \
    if (!_st.ok()) return _st;                  \
  } while (0)

#define LAZYROOT_CONCAT_INNER(a, b) a##b
#define LAZYROOT_CONCAT(a, b) LAZYROOT_CONCAT_INNER(a, b)
#define LAZYROOT_ASSIGN_OR_RETURN(lhs, expr) \
  LAZYROOT_ASSIGN_OR_RETURN_IMPL(LAZYROOT_CONCAT(_res_, __LINE__), lhs, expr)
#define LAZYROOT_ASSIGN_OR_RETURN_IMPL(res, lhs, expr) \
  auto res = (expr);                                   \
  if (!res.ok()) return res.status();                  \
  lhs = std::move(res).value()
