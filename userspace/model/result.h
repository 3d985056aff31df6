// Result<T>: a value or an error (a kind, a message, errno). Recoverable errors travel as
// values; exceptions are kept for fatal setup errors caught in main().
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>
#include <variant>

namespace tollgate {

// What kind of failure: the API maps it to an HTTP status, callers decide
// whether a retry can help.
enum class ErrorKind {
  internal,   // a bug or an unexpected state
  invalid,    // the request or file is malformed or out of range
  not_found,  // the object named does not exist
  conflict,   // the object exists already, or the change contradicts the state
  capacity,   // the data path cannot hold what was asked
  kernel,     // a kernel call failed (errno kept)
  io,         // a file could not be read or written (errno kept)
};

struct Error {
  std::string message;
  ErrorKind kind = ErrorKind::internal;
  int error_number = 0;  // errno, for kernel and io errors
};

template <typename... Args>
Error make_error(fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...)};
}

template <typename... Args>
Error make_error(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...), kind};
}

// A failed system or kernel call: `kind` (kernel or io) with its errno.
template <typename... Args>
Error errno_error(ErrorKind kind, int error_number, fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...), kind, error_number};
}

// The same error with `context` before its message.
inline Error with_context(Error error, std::string_view context) {
  error.message = fmt::format("{}: {}", context, error.message);
  return error;
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Error error) : state_(std::move(error)) {}

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace tollgate
