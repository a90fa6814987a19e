// Status helpers: code names and message formatting.
#include "ir/status.h"

namespace dsc {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kUnimplemented: return "unsupported";
    case StatusCode::kFailedPrecondition: return "failed precondition";
    case StatusCode::kOutOfRange: return "out of range";
    case StatusCode::kDataLoss: return "malformed data";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return StrCat(StatusCodeName(code_), ": ", message_);
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  // Layers that each name what they handle (a kernel its node, the executor the node it ran) would
  // otherwise repeat the context: "node X: node X: ...".
  if (message_.compare(0, context.size(), context) == 0 &&
      (message_.size() == context.size() || message_.compare(context.size(), 2, ": ") == 0))
    return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace dsc
