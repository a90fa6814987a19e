// Status and StatusOr<T>: how errors travel through dscompile, with macros to propagate them.
//
//   StatusOr<Graph> g = ImportOnnx(path);
//   if (!g.ok()) return g.status();
//   ASSIGN_OR_RETURN(Graph graph, ImportOnnx(path));
//   RETURN_IF_ERROR(Verify(graph));
#pragma once

#include <optional>
#include <sstream>
#include <string>
#include <utility>

namespace dsc {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input from the user: file, config, flag
  kNotFound,
  kUnimplemented,    // a feature this project does not support (yet)
  kFailedPrecondition,
  kOutOfRange,
  kDataLoss,         // malformed file contents
  kInternal,         // a bug in dscompile
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status OK() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Prefixes context ("while importing model.onnx: ...") without changing the code; a message that
  // already starts with this context keeps it once.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Builds a message from streamable parts: InvalidArgument("node ", name, " has ", n, " inputs").
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args> Status InvalidArgument(const Args&... a) { return Status(StatusCode::kInvalidArgument, StrCat(a...)); }
template <typename... Args> Status NotFound(const Args&... a) { return Status(StatusCode::kNotFound, StrCat(a...)); }
template <typename... Args> Status Unimplemented(const Args&... a) { return Status(StatusCode::kUnimplemented, StrCat(a...)); }
template <typename... Args> Status FailedPrecondition(const Args&... a) { return Status(StatusCode::kFailedPrecondition, StrCat(a...)); }
template <typename... Args> Status OutOfRange(const Args&... a) { return Status(StatusCode::kOutOfRange, StrCat(a...)); }
template <typename... Args> Status DataLoss(const Args&... a) { return Status(StatusCode::kDataLoss, StrCat(a...)); }
template <typename... Args> Status Internal(const Args&... a) { return Status(StatusCode::kInternal, StrCat(a...)); }

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : status_(status) {
    if (status_.ok()) status_ = Internal("StatusOr constructed from an OK status without a value");
  }
  StatusOr(T value) : value_(std::move(value)) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace dsc

#define DSC_CONCAT_INNER(a, b) a##b
#define DSC_CONCAT(a, b) DSC_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    ::dsc::Status _dsc_status = (expr);       \
    if (!_dsc_status.ok()) return _dsc_status; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(DSC_CONCAT(_dsc_statusor_, __LINE__), lhs, expr)
