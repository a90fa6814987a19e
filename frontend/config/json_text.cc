// Config text as DeepSpeed reads it (hjson), and the nesting check the plan file's header shares.
#include "frontend/config/json_text.h"

#include <string>

#include "frontend/config/config_error.h"
#include "frontend/config/hjson.h"

namespace dsc {
namespace {

int LineOf(const std::string& text, size_t pos) {
  int line = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i) line += text[i] == '\n';
  return line;
}

}  // namespace

Status CheckJsonNesting(const std::string& text, int max_depth) {
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
    } else if (c == '{' || c == '[') {
      if (++depth <= max_depth) continue;
      const size_t line_start = text.rfind('\n', i);
      const size_t column = line_start == std::string::npos ? i + 1 : i - line_start;
      return InvalidArgument("nesting deeper than ", max_depth, " objects and arrays at line ", LineOf(text, i),
                             ", column ", column);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return Status::OK();
}

StatusOr<nlohmann::json> ParseConfigJson(const std::string& text, const std::string& source_name) {
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseHjson(text, source_name, kMaxConfigNesting));
  if (!doc.is_object()) {
    return ConfigError(DsErrorKind::kValueError, source_name, "",
                       "the config must be a JSON object, got " + ShortJson(doc));
  }
  return doc;
}

}  // namespace dsc
