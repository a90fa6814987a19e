// Config error messages: the source, JSON path, message and DeepSpeed's exception kind.
#include "frontend/config/config_error.h"

namespace dsc {

const char* DsErrorKindName(DsErrorKind kind) {
  switch (kind) {
    case DsErrorKind::kAssertionError: return "AssertionError";
    case DsErrorKind::kValueError: return "ValueError";
    case DsErrorKind::kValidationError: return "ValidationError";
    case DsErrorKind::kTypeError: return "TypeError";
    case DsErrorKind::kKeyError: return "KeyError";
    case DsErrorKind::kDeepSpeedConfigError: return "DeepSpeedConfigError";
    case DsErrorKind::kNotImplementedError: return "NotImplementedError";
    case DsErrorKind::kException: return "Exception";
    case DsErrorKind::kElasticityConfigError: return "ElasticityConfigError";
    case DsErrorKind::kElasticityError: return "ElasticityError";
    case DsErrorKind::kElasticityIncompatibleWorldSize: return "ElasticityIncompatibleWorldSize";
    case DsErrorKind::kRuntimeError: return "RuntimeError";
    case DsErrorKind::kOverflowError: return "OverflowError";
    case DsErrorKind::kHjsonDecodeError: return "HjsonDecodeError";
    case DsErrorKind::kIndexError: return "IndexError";
    case DsErrorKind::kUnicodeDecodeError: return "UnicodeDecodeError";
    case DsErrorKind::kZeroDivisionError: return "ZeroDivisionError";
    case DsErrorKind::kAttributeError: return "AttributeError";
    case DsErrorKind::kUnsupported: return "Unsupported";
  }
  return "Unknown";
}

Status ConfigError(DsErrorKind kind, const std::string& source, const std::string& path,
                   const std::string& message) {
  StatusCode code = StatusCode::kInvalidArgument;
  if (kind == DsErrorKind::kUnsupported || kind == DsErrorKind::kNotImplementedError) {
    code = StatusCode::kUnimplemented;
  } else if (kind == DsErrorKind::kException) {
    code = StatusCode::kFailedPrecondition;
  }
  std::string text;
  if (!source.empty()) text += source + ": ";
  if (!path.empty()) text += ShortText(path) + ": ";
  // Messages quote keys and values from the config; a 10 MB key must not make a 10 MB message.
  constexpr size_t kMaxMessage = 2000;
  text += message.size() > kMaxMessage ? StrCat(message.substr(0, kMaxMessage), "... (", message.size(), " bytes)") : message;
  text += StrCat(" [", DsErrorKindName(kind), "]");
  return Status(code, text);
}

std::string DeepSpeedErrorKind(const Status& status) {
  const std::string& m = status.message();
  if (m.empty() || m.back() != ']') return "";
  size_t open = m.rfind('[');
  if (open == std::string::npos) return "";
  return m.substr(open + 1, m.size() - open - 2);
}

std::string ShortText(const std::string& text) {
  constexpr size_t kKeep = 80;
  if (text.size() <= kKeep + 20) return text;
  return StrCat(text.substr(0, kKeep), "... (", text.size(), " bytes)");
}

std::string ShortJson(const nlohmann::json& value) {
  std::string s = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

}  // namespace dsc
