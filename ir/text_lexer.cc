// Tokenizer and spelling rules of the IR text form.
#include "ir/text_lexer.h"

#include <charconv>
#include <cstring>

namespace dsc::text {
namespace {

bool IsIdentStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// to_chars output may lack a '.', e.g. "1" or "-0"; add one so it lexes as a float again.
std::string AsFloatSpelling(const char* begin, const char* end) {
  std::string s(begin, end);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // 'n' covers inf and nan
  return s;
}

}  // namespace

bool IsSimpleIdentifier(std::string_view s) {
  if (s.empty() || !IsIdentStart(s[0])) return false;
  for (char c : s)
    if (!IsIdentChar(c)) return false;
  return true;
}

std::string QuoteString(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (u < 0x20 || u == 0x7f) {
          out += "\\x";
          out += kHex[u >> 4];
          out += kHex[u & 15];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string FormatName(std::string_view s) { return IsSimpleIdentifier(s) ? std::string(s) : QuoteString(s); }

std::string FormatFloat(float f) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, f);  // shortest that reads back to the same float
  return AsFloatSpelling(buf, r.ptr);
}

std::string FormatDouble(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return AsFloatSpelling(buf, r.ptr);
}

// ---------------------------------------------------------------- Lexer

const Token& Lexer::Peek() {
  if (!has_peeked_) {
    peeked_ = Scan();
    has_peeked_ = true;
  }
  return peeked_;
}

Token Lexer::Next() {
  if (has_peeked_) {
    has_peeked_ = false;
    return std::move(peeked_);
  }
  return Scan();
}

std::string_view Lexer::LineText(int line) const {
  size_t start = 0;
  for (int l = 1; l < line && start < src_.size(); ++l) {
    size_t nl = src_.find('\n', start);
    if (nl == std::string_view::npos) return {};
    start = nl + 1;
  }
  size_t end = src_.find('\n', start);
  if (end == std::string_view::npos) end = src_.size();
  std::string_view text = src_.substr(start, end - start);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

void Lexer::SkipSpaceAndComments() {
  while (pos_ < src_.size()) {
    char c = src_[pos_];
    if (c == '\n') {
      ++pos_;
      ++line_;
      line_start_ = pos_;
    } else if (c == ' ' || c == '\t' || c == '\r') {
      ++pos_;
    } else if (c == '#') {
      while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
    } else {
      break;
    }
  }
}

Token Lexer::Make(TokenKind kind, size_t start, int line, int column) {
  Token t;
  t.kind = kind;
  t.text = src_.substr(start, pos_ - start);
  t.line = line;
  t.column = column;
  return t;
}

Token Lexer::Scan() {
  SkipSpaceAndComments();
  const size_t start = pos_;
  const int line = line_;
  const int column = static_cast<int>(pos_ - line_start_) + 1;
  if (pos_ >= src_.size()) return Make(TokenKind::kEnd, start, line, column);
  auto at = [&](size_t i) { return pos_ + i < src_.size() ? src_[pos_ + i] : '\0'; };
  char c = at(0);

  if (IsIdentStart(c)) {
    while (IsIdentChar(at(0))) ++pos_;
    return Make(TokenKind::kIdent, start, line, column);
  }

  // Numbers: [+-]? (digits ('.' digits*)? | '.' digits) ([eE] [+-]? digits)?
  size_t sign = (c == '-' || c == '+') ? 1 : 0;
  if (IsDigit(at(sign)) || (at(sign) == '.' && IsDigit(at(sign + 1)))) {
    pos_ += sign;
    bool is_float = false;
    while (IsDigit(at(0))) ++pos_;
    if (at(0) == '.' && at(1) != '.') {  // "1..." would be a number then an ellipsis
      is_float = true;
      ++pos_;
      while (IsDigit(at(0))) ++pos_;
    }
    if ((at(0) == 'e' || at(0) == 'E') &&
        (IsDigit(at(1)) || ((at(1) == '+' || at(1) == '-') && IsDigit(at(2))))) {
      is_float = true;
      pos_ += 2;
      while (IsDigit(at(0))) ++pos_;
    }
    return Make(is_float ? TokenKind::kFloat : TokenKind::kInt, start, line, column);
  }

  if (c == '"') {
    ++pos_;
    std::string value;
    while (true) {
      if (pos_ >= src_.size() || src_[pos_] == '\n') {
        Token t = Make(TokenKind::kError, start, line, column);
        t.value = "unterminated string";
        return t;
      }
      char d = src_[pos_++];
      if (d == '"') break;
      if (d != '\\') {
        value += d;
        continue;
      }
      char e = at(0);
      ++pos_;
      switch (e) {
        case '"': value += '"'; break;
        case '\\': value += '\\'; break;
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case 'x': {
          int hi = HexValue(at(0)), lo = HexValue(at(1));
          if (hi >= 0 && lo >= 0) {
            value += static_cast<char>(hi * 16 + lo);
            pos_ += 2;
            break;
          }
          [[fallthrough]];
        }
        default: {
          if (pos_ > src_.size()) pos_ = src_.size();
          Token t = Make(TokenKind::kError, start, line, column);
          t.value = "invalid escape sequence in string (use \\\" \\\\ \\n \\t \\r or \\xHH)";
          return t;
        }
      }
    }
    Token t = Make(TokenKind::kString, start, line, column);
    t.value = std::move(value);
    return t;
  }

  if (c == '=' && at(1) == '>') {
    pos_ += 2;
    return Make(TokenKind::kArrow, start, line, column);
  }
  if (c == '.' && at(1) == '.' && at(2) == '.') {
    pos_ += 3;
    return Make(TokenKind::kEllipsis, start, line, column);
  }
  if (std::strchr("<>()[]{},:=?.@-", c) != nullptr) {
    ++pos_;
    return Make(TokenKind::kPunct, start, line, column);
  }
  ++pos_;
  Token t = Make(TokenKind::kError, start, line, column);
  t.value = "unexpected character";
  return t;
}

bool Lexer::AtQuote() {
  while (pos_ < src_.size() && (src_[pos_] == ' ' || src_[pos_] == '\t')) ++pos_;
  return pos_ < src_.size() && src_[pos_] == '"';
}

bool Lexer::RawUntil(char close, std::string* out, Token* error) {
  while (pos_ < src_.size() && (src_[pos_] == ' ' || src_[pos_] == '\t')) ++pos_;
  const size_t start = pos_;
  const int column = static_cast<int>(pos_ - line_start_) + 1;
  while (pos_ < src_.size() && src_[pos_] != close && src_[pos_] != '\n') ++pos_;
  if (pos_ >= src_.size() || src_[pos_] != close) {
    *error = Make(TokenKind::kError, start, line_, column);
    error->value = std::string("expected '") + close + "' before the end of the line";
    return false;
  }
  std::string_view raw = src_.substr(start, pos_ - start);
  while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\r')) raw.remove_suffix(1);
  *out = std::string(raw);
  return true;
}

}  // namespace dsc::text
