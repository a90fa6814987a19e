// hjson-py 3.1's decoder (what DeepSpeed's config loader runs), read for read, onto nlohmann::json.
// Function names follow hjson/decoder.py so the two can be compared side by side.
#include "frontend/config/hjson.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "frontend/config/config_error.h"

namespace dsc {
namespace {

using nlohmann::json;

constexpr int kEof = -1;

bool IsDigit(int c) { return c >= '0' && c <= '9'; }

// Python's str.isspace() for the code point at s[i] (ASCII and the Unicode spaces in UTF-8);
// returns its length in bytes, 0 when it is not a space.
size_t SpaceAt(const std::string& s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) return 1;
  auto at = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
  if (c == 0xc2 && (at(1) == 0x85 || at(1) == 0xa0)) return 2;
  if (c == 0xe1 && at(1) == 0x9a && at(2) == 0x80) return 3;  // U+1680
  if (c == 0xe2 && at(1) == 0x80 && (at(2) <= 0x8a || at(2) == 0xa8 || at(2) == 0xa9 || at(2) == 0xaf)) return 3;
  if (c == 0xe2 && at(1) == 0x81 && at(2) == 0x9f) return 3;  // U+205F
  if (c == 0xe3 && at(1) == 0x80 && at(2) == 0x80) return 3;  // U+3000
  return 0;
}

// Python's str.strip() (str.rstrip() with `left` false).
std::string Strip(const std::string& s, bool left = true) {
  size_t begin = 0;
  while (left && begin < s.size()) {
    const size_t n = SpaceAt(s, begin);
    if (n == 0) break;
    begin += n;
  }
  size_t end = s.size();
  while (end > begin) {
    size_t start = end - 1;  // the last code point's first byte
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80) --start;
    if (SpaceAt(s, start) != end - start) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;  // a lone surrogate has no UTF-8 form
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xc0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xe0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    *out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    *out += static_cast<char>(0xf0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    *out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// The byte offset of the first byte that is not strict UTF-8 (what Python's decoder refuses:
// overlong forms, surrogates, code points above U+10FFFF), or npos.
size_t InvalidUtf8At(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (i + n > s.size()) return i;
    for (size_t k = 1; k < n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n;
  }
  return std::string::npos;
}

// Python's int(text, 16) for the four characters of a \u escape: surrounding spaces, a sign, a 0x
// prefix and single underscores between digits are accepted; nullopt where Python raises.
std::optional<int64_t> PythonHex(const std::string& text) {
  std::string t = Strip(text);
  bool negative = false;
  size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
  if (i + 1 < t.size() && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'X')) {
    i += 2;
    if (i < t.size() && t[i] == '_') ++i;
  }
  if (i >= t.size()) return std::nullopt;
  int64_t v = 0;
  bool last_digit = false;
  for (; i < t.size(); ++i) {
    const char c = t[i];
    if (c == '_') {
      if (!last_digit) return std::nullopt;
      last_digit = false;
      continue;
    }
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return std::nullopt;
    v = v * 16 + d;
    last_digit = true;
  }
  if (!last_digit) return std::nullopt;
  return negative ? -v : v;
}

class Decoder {
 public:
  Decoder(const std::string& s, const std::string& source, int max_depth)
      : s_(s), source_(source), max_depth_(max_depth) {}

  // HjsonDecoder.decode: raw_decode, then nothing but blanks and comments may follow.
  StatusOr<json> Decode() {
    if (size_t bad = InvalidUtf8At(s_); bad != std::string::npos)
      return Error(DsErrorKind::kUnicodeDecodeError, "the file is not UTF-8 (Python cannot decode byte " +
                                                 std::to_string(static_cast<unsigned char>(s_[bad])) + ")", bad);
    size_t end = 0;
    const bool bom = s_.compare(0, 3, "\xef\xbb\xbf") == 0;
    if (bom) end = 3;
    RETURN_IF_ERROR(GetNext(end));
    json value;
    if (!bom && At(end) == kEof) return json::object();  // blank or comments only
    if (At(end) == '{' || At(end) == '[') {
      RETURN_IF_ERROR(ScanOnce(end, &value));
    } else {
      // A root object without braces, else a single value (true, 5, "x").
      size_t object_end = end;
      Status as_object = Object(object_end, &value, /*without_braces=*/true);
      if (as_object.ok()) {
        end = object_end;
      } else if (!syntax_error_) {
        return as_object;  // hjson-py retries as a single value only after an HjsonDecodeError
      } else {
        value = json();
        path_.clear();
        depth_ = 0;
        if (!ScanOnce(end, &value).ok()) return as_object;
      }
    }
    RETURN_IF_ERROR(GetNext(end));
    if (end != s_.size()) return Syntax("Extra data", end);
    return value;
  }

 private:
  int At(size_t i) const { return i < s_.size() ? static_cast<unsigned char>(s_[i]) : kEof; }

  Status Error(DsErrorKind kind, const std::string& what, size_t pos, const std::string& after = "") const {
    syntax_error_ = false;
    pos = std::min(pos, s_.size());
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < pos; ++i)
      if (s_[i] == '\n') ++line, line_start = i + 1;
    return ConfigError(kind, source_, "", StrCat(what, " at line ", line, ", column ", pos - line_start + 1, after));
  }
  // An HjsonDecodeError; the other errors (DeepSpeed's duplicate keys, OverflowError) are not.
  Status Syntax(const std::string& what, size_t pos) const {
    Status s = Error(DsErrorKind::kHjsonDecodeError, "invalid Hjson/JSON: " + what, pos);
    syntax_error_ = true;
    return s;
  }

  // getNext: past blanks and comments.
  Status GetNext(size_t& end) const {
    while (true) {
      while (At(end) == ' ' || At(end) == '\t' || At(end) == '\n' || At(end) == '\r') ++end;
      const int ch = At(end), ch2 = At(end + 1);
      if (ch == '#' || (ch == '/' && ch2 == '/')) {
        end = GetEol(end);
      } else if (ch == '/' && ch2 == '*') {
        const size_t close = s_.find("*/", end + 2);
        if (close == std::string::npos) return Error(DsErrorKind::kIndexError, "unterminated /* comment", end);
        end = close + 2;
      } else {
        return Status::OK();
      }
    }
  }
  size_t GetEol(size_t end) const {
    while (At(end) != '\r' && At(end) != '\n' && At(end) != kEof) ++end;
    return end;
  }
  size_t SkipIndent(size_t end, int64_t n) const {
    while ((At(end) == ' ' || At(end) == '\t' || At(end) == '\r') && n != 0) ++end, --n;
    return end;
  }

  // scan_once: the value at `end` (GetNext already done), `end` moved past it.
  Status ScanOnce(size_t& end, json* out) {
    const int ch = At(end);
    if (ch == kEof) return Syntax("Expecting value", end);
    if (ch == '"' || ch == '\'') {
      if (s_.compare(end, 3, "'''") == 0) return MultilineString(end, out);
      std::string text;
      RETURN_IF_ERROR(String(end, &text));
      *out = std::move(text);
      return Status::OK();
    }
    if (ch == '{') {
      ++end;
      return Object(end, out, false);
    }
    if (ch == '[') {
      ++end;
      return Array(end, out);
    }
    return Quoteless(end, out);
  }

  // scanstring: a "..." or '...' string starting at its quote.
  Status String(size_t& end, std::string* out) const {
    const size_t begin = end;
    const char quote = s_[end++];
    while (true) {
      const int ch = At(end);
      if (ch == kEof) return Syntax("Unterminated string starting", begin);
      ++end;
      if (ch == quote) return Status::OK();
      if (ch < 0x20) return Syntax("Invalid control character in a string", end - 1);
      if (ch != '\\') {
        *out += static_cast<char>(ch);
        continue;
      }
      const int esc = At(end);
      if (esc == kEof) return Syntax("Unterminated string starting", begin);
      if (esc != 'u') {
        static const std::string kEscapes = "\"'\\/bfnrt", kMeaning = "\"'\\/\b\f\n\r\t";
        const size_t k = kEscapes.find(static_cast<char>(esc));
        if (k == std::string::npos) return Syntax("Invalid \\X escape sequence", end);
        *out += kMeaning[k];
        ++end;
        continue;
      }
      auto hex4 = [&](size_t at) -> std::optional<int64_t> {
        if (at + 4 > s_.size() || s_[at + 1] == 'x' || s_[at + 1] == 'X') return std::nullopt;
        return PythonHex(s_.substr(at, 4));
      };
      std::optional<int64_t> uni = hex4(end + 1);
      if (!uni) return Syntax("Invalid \\uXXXX escape sequence", end - 1);
      if (*uni < 0) return Syntax("a \\u escape names a negative code point (Python: chr() arg not in range)", end - 1);
      end += 5;
      uint32_t cp = static_cast<uint32_t>(*uni);
      if ((cp & 0xfc00) == 0xd800 && s_.compare(end, 2, "\\u") == 0 && end + 6 <= s_.size() && s_[end + 3] != 'x' &&
          s_[end + 3] != 'X') {
        std::optional<int64_t> low = PythonHex(s_.substr(end + 2, 4));
        if (!low) return Syntax("Invalid \\uXXXX escape sequence", end);
        if ((*low & 0xfc00) == 0xdc00) {
          cp = 0x10000 + (((cp - 0xd800) << 10) | (static_cast<uint32_t>(*low) - 0xdc00));
          end += 6;
        }
      }
      AppendUtf8(cp, out);
    }
  }

  // mlscanstring: '''...''' with the indentation of its first quote's line taken off each line.
  Status MultilineString(size_t& end, json* out) const {
    // hjson-py counts back to the previous newline with Python indices, which wrap past the start of
    // the text to its end; with no newline anywhere it raises IndexError.
    int64_t indent = 0;
    const int64_t size = static_cast<int64_t>(s_.size());
    while (true) {
      int64_t i = static_cast<int64_t>(end) - indent - 1;
      if (i < 0) i += size;
      if (i < 0) return Error(DsErrorKind::kIndexError, "a '''string''' in a text without a newline", end);
      if (s_[i] == '\n') break;
      ++indent;
    }
    end = SkipIndent(end + 3, -1);
    if (At(end) == kEof) return Error(DsErrorKind::kIndexError, "Bad multiline string", end);
    if (At(end) == '\n') end = SkipIndent(end + 1, indent);
    std::string text;
    int triple = 0;
    while (true) {
      const int ch = At(end);
      if (ch == kEof) return Syntax("Bad multiline string", end);
      if (ch == '\'') {
        ++triple;
        ++end;
        if (triple == 3) {
          if (!text.empty() && text.back() == '\n') text.pop_back();
          *out = std::move(text);
          return Status::OK();
        }
        continue;
      }
      for (; triple > 0; --triple) text += '\'';
      if (ch == '\n') {
        text += '\n';
        end = SkipIndent(end + 1, indent);
      } else {
        if (ch != '\r') text += static_cast<char>(ch);
        ++end;
      }
    }
  }

  // NUMBER_RE matched at `begin` ending exactly at `end`: [\t ]*(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?[\t ]*
  bool Number(size_t begin, size_t end, std::string* digits, bool* is_float) const {
    size_t i = begin;
    while (At(i) == ' ' || At(i) == '\t') ++i;
    const size_t start = i;
    if (At(i) == '-') ++i;
    if (At(i) == '0') {
      ++i;
    } else if (IsDigit(At(i))) {
      while (IsDigit(At(i))) ++i;
    } else {
      return false;
    }
    *is_float = false;
    if (At(i) == '.' && IsDigit(At(i + 1))) {
      for (i += 1; IsDigit(At(i));) ++i;
      *is_float = true;
    }
    if (At(i) == 'e' || At(i) == 'E') {
      size_t j = i + 1;
      if (At(j) == '+' || At(j) == '-') ++j;
      if (IsDigit(At(j))) {
        while (IsDigit(At(j))) ++j;
        i = j;
        *is_float = true;
      }
    }
    *digits = s_.substr(start, i - start);
    while (At(i) == ' ' || At(i) == '\t') ++i;
    return i == end;
  }

  // scantfnns: true, false, null, a number, or a quoteless string to the end of the line.
  Status Quoteless(size_t& end, json* out) const {
    RETURN_IF_ERROR(GetNext(end));
    const size_t begin = end;
    const int chf = At(begin);
    if (chf != kEof && std::string("{}[],:").find(static_cast<char>(chf)) != std::string::npos)
      return Syntax("Found a punctuator character when expecting a quoteless string (check your syntax)", end);
    for (;; ++end) {
      const int ch = At(end);
      const bool eol = ch == '\r' || ch == '\n' || ch == kEof;
      if (!(eol || ch == ',' || ch == '}' || ch == ']' || ch == '#' ||
            (ch == '/' && (At(end + 1) == '/' || At(end + 1) == '*'))))
        continue;
      const std::string text = Strip(s_.substr(begin, end - begin));
      if (chf == 'n' && text == "null") return *out = nullptr, Status::OK();
      if (chf == 't' && text == "true") return *out = true, Status::OK();
      if (chf == 'f' && text == "false") return *out = false, Status::OK();
      std::string digits;
      bool is_float = false;
      if ((chf == '-' || IsDigit(chf)) && Number(begin, end, &digits, &is_float)) {
        if (!is_float) {
          errno = 0;
          const long long v = std::strtoll(digits.c_str(), nullptr, 10);
          if (errno == 0) return *out = static_cast<int64_t>(v), Status::OK();
          errno = 0;
          const unsigned long long u = std::strtoull(digits.c_str(), nullptr, 10);
          if (errno == 0 && digits[0] != '-') return *out = static_cast<uint64_t>(u), Status::OK();
          return *out = std::strtod(digits.c_str(), nullptr), Status::OK();  // Python's int is unbounded
        }
        const double v = std::strtod(digits.c_str(), nullptr);
        if (std::isinf(v))
          return Error(DsErrorKind::kOverflowError,
                       "number " + digits + " is out of a double's range (hjson-py: cannot convert float infinity "
                       "to integer)", begin);
        if (v == std::trunc(v) && std::fabs(v) < 1e10) return *out = static_cast<int64_t>(v), Status::OK();
        return *out = v, Status::OK();
      }
      if (eol) return *out = text, Status::OK();
    }
  }

  // scanKeyName: a quoted key, or the text up to ':' without inner blanks.
  Status KeyName(size_t& end, std::string* key) const {
    RETURN_IF_ERROR(GetNext(end));
    if (At(end) == '"' || At(end) == '\'') return String(end, key);
    const size_t begin = end;
    int64_t space = -1;
    for (;; ++end) {
      const int ch = At(end);
      if (ch == kEof) return Syntax("Bad key name (eof)", end);
      if (ch == ':') {
        if (begin == end) return Syntax("Found ':' but no key name (for an empty key name use quotes)", begin);
        if (space >= 0) {
          if (space != static_cast<int64_t>(end) - 1)
            return Syntax("Found whitespace in your key name (use quotes to include)", space);
          *key = Strip(s_.substr(begin, end - begin), /*left=*/false);
          return Status::OK();
        }
        *key = s_.substr(begin, end - begin);
        return Status::OK();
      }
      if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
        if (space < 0 || space == static_cast<int64_t>(end) - 1) space = static_cast<int64_t>(end);
      } else if (ch == '{' || ch == '}' || ch == '[' || ch == ']' || ch == ',') {
        return Syntax(StrCat("Found '", static_cast<char>(ch), "' where a key name was expected (check your syntax "
                             "or use quotes if the key name includes {}[],: or whitespace)"),
                      begin);
      }
    }
  }

  Status Enter(size_t at) {
    if (++depth_ > max_depth_)
      return Error(DsErrorKind::kValueError, StrCat("nesting deeper than ", max_depth_, " objects and arrays"), at - 1,
                   " (DeepSpeed configs nest about 4 deep)");
    return Status::OK();
  }

  std::string Path(const std::string& key) const { return path_.empty() ? key : path_.back() + "." + key; }

  // JSONObject: `end` is past '{' (or at the first key of a root object without braces).
  Status Object(size_t& end, json* out, bool without_braces) {
    if (!without_braces) RETURN_IF_ERROR(Enter(end));
    *out = json::object();
    RETURN_IF_ERROR(GetNext(end));
    if (!without_braces && At(end) == '}') {
      ++end;
      --depth_;
      return Status::OK();
    }
    std::vector<std::string> keys;
    while (true) {
      std::string key;
      RETURN_IF_ERROR(KeyName(end, &key));
      RETURN_IF_ERROR(GetNext(end));
      if (At(end) != ':') return Syntax("Expecting ':' delimiter", end);
      ++end;
      RETURN_IF_ERROR(GetNext(end));
      path_.push_back(Path(key));
      json value;
      RETURN_IF_ERROR(ScanOnce(end, &value));
      path_.pop_back();
      keys.push_back(key);
      (*out)[key] = std::move(value);
      RETURN_IF_ERROR(GetNext(end));
      if (At(end) == ',') {
        ++end;
        RETURN_IF_ERROR(GetNext(end));
      }
      if (without_braces ? At(end) == kEof : At(end) == '}') {
        if (!without_braces) ++end;
        break;
      }
    }
    if (out->size() != keys.size()) {  // DeepSpeed's object_pairs_hook, raised as each object closes
      std::string list;
      for (size_t i = 0; i < keys.size(); ++i) {
        bool repeated = false, first = true;
        for (size_t j = 0; j < keys.size(); ++j) {
          repeated |= j != i && keys[j] == keys[i];
          first &= !(j < i && keys[j] == keys[i]);
        }
        if (repeated && first) list += (list.empty() ? "'" : ", '") + Path(keys[i]) + "'";
      }
      return ConfigError(DsErrorKind::kValueError, source_, "",
                         "duplicate keys: [" + list +
                             "]; DeepSpeed refuses them too (\"Duplicate keys in DeepSpeed config\")");
    }
    if (!without_braces) --depth_;
    return Status::OK();
  }

  // JSONArray: `end` is past '['.
  Status Array(size_t& end, json* out) {
    RETURN_IF_ERROR(Enter(end));
    *out = json::array();
    RETURN_IF_ERROR(GetNext(end));
    if (At(end) == ']') {
      ++end;
      --depth_;
      return Status::OK();
    }
    if (At(end) == kEof) return Syntax("End of input while parsing an array (did you forget a closing ']'?)", end);
    path_.push_back(path_.empty() ? "[]" : path_.back() + "[]");
    while (true) {
      json value;
      RETURN_IF_ERROR(ScanOnce(end, &value));
      out->push_back(std::move(value));
      RETURN_IF_ERROR(GetNext(end));
      if (At(end) == ',') {
        ++end;
        RETURN_IF_ERROR(GetNext(end));
      }
      if (At(end) == ']') {
        ++end;
        break;
      }
    }
    path_.pop_back();
    --depth_;
    return Status::OK();
  }

  const std::string& s_;
  const std::string& source_;
  const int max_depth_;
  int depth_ = 0;
  mutable bool syntax_error_ = false;  // the last error was an HjsonDecodeError
  std::vector<std::string> path_;  // JSON paths of the values being read, for duplicate-key messages
};

}  // namespace

StatusOr<json> ParseHjson(const std::string& text, const std::string& source_name, int max_depth) {
  return Decoder(text, source_name, max_depth).Decode();
}

}  // namespace dsc
