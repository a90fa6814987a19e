// DeepSpeed's JSON dialect (comments, trailing commas), duplicate keys, and nesting limits.
#include "frontend/config/json_text.h"

#include <cctype>
#include <set>
#include <vector>

#include "frontend/config/config_error.h"

namespace dsc {
namespace {

int LineOf(const std::string& text, size_t pos) {
  int line = 1;
  for (size_t i = 0; i < pos && i < text.size(); ++i) line += text[i] == '\n';
  return line;
}

void Blank(std::string& s, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    if (s[i] != '\n') s[i] = ' ';
  }
}

}  // namespace

StatusOr<std::string> StripJsonExtensions(const std::string& text, const std::string& source_name) {
  std::string out = text;
  size_t last_comma = std::string::npos;  // a comma with only blanks/comments after it so far
  size_t i = 0;
  while (i < out.size()) {
    char c = out[i];
    if (c == '"') {
      size_t start = i++;
      while (i < out.size() && out[i] != '"') {
        if (out[i] == '\\') ++i;
        ++i;
      }
      if (i >= out.size()) {
        return ConfigError(DsErrorKind::kValueError, source_name, "",
                           StrCat("unterminated string starting at line ", LineOf(text, start)));
      }
      ++i;
      last_comma = std::string::npos;
    } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '/') {
      size_t end = out.find('\n', i);
      if (end == std::string::npos) end = out.size();
      Blank(out, i, end);
      i = end;
    } else if (c == '#') {
      size_t end = out.find('\n', i);
      if (end == std::string::npos) end = out.size();
      Blank(out, i, end);
      i = end;
    } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '*') {
      size_t end = out.find("*/", i + 2);
      if (end == std::string::npos) {
        return ConfigError(DsErrorKind::kValueError, source_name, "",
                           StrCat("unterminated /* comment starting at line ", LineOf(text, i)));
      }
      Blank(out, i, end + 2);
      i = end + 2;
    } else if (c == ',') {
      last_comma = i++;
    } else if (c == '}' || c == ']') {
      if (last_comma != std::string::npos) out[last_comma] = ' ';
      last_comma = std::string::npos;
      ++i;
    } else {
      if (!std::isspace(static_cast<unsigned char>(c))) last_comma = std::string::npos;
      ++i;
    }
  }
  return out;
}

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
  ASSIGN_OR_RETURN(std::string plain, StripJsonExtensions(text, source_name));
  if (Status nesting = CheckJsonNesting(plain, kMaxConfigNesting); !nesting.ok())
    return ConfigError(DsErrorKind::kValueError, source_name, "",
                       nesting.message() + " (DeepSpeed configs nest about 4 deep)");

  struct Frame {
    bool is_object;
    std::string path;
    std::set<std::string> keys;
    std::string last_key;
  };
  std::vector<Frame> stack;
  std::vector<std::string> duplicates;
  auto child_path = [&stack]() -> std::string {
    if (stack.empty()) return "";
    const Frame& top = stack.back();
    std::string name = top.is_object ? top.last_key : "[]";
    if (top.path.empty()) return name;
    return top.is_object ? top.path + "." + name : top.path + name;
  };
  nlohmann::json::parser_callback_t callback = [&](int, nlohmann::json::parse_event_t event,
                                                   nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      stack.push_back(Frame{event == E::object_start, child_path(), {}, ""});
    } else if (event == E::object_end || event == E::array_end) {
      if (!stack.empty()) stack.pop_back();
    } else if (event == E::key && !stack.empty()) {
      Frame& top = stack.back();
      std::string key = parsed.is_string() ? parsed.get<std::string>() : parsed.dump();
      top.last_key = key;
      if (!top.keys.insert(key).second) {
        duplicates.push_back(top.path.empty() ? key : top.path + "." + key);
      }
    }
    return true;
  };

  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(plain, callback, /*allow_exceptions=*/true);
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();
    size_t close = what.find("] ");
    if (what.rfind("[json.exception", 0) == 0 && close != std::string::npos) what = what.substr(close + 2);
    return ConfigError(DsErrorKind::kValueError, source_name, "", "invalid JSON: " + what);
  }
  if (!duplicates.empty()) {
    std::string list;
    for (const std::string& d : duplicates) list += (list.empty() ? "" : ", ") + ("'" + d + "'");
    return ConfigError(DsErrorKind::kValueError, source_name, "",
                       "duplicate keys: [" + list +
                           "]; DeepSpeed refuses them too (\"Duplicate keys in DeepSpeed config\")");
  }
  if (!doc.is_object()) {
    return ConfigError(DsErrorKind::kValueError, source_name, "",
                       "the config must be a JSON object, got " + ShortJson(doc));
  }
  return doc;
}

}  // namespace dsc
