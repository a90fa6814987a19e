// Lexical layer of the IR text form (ir/text.h), shared by its printer and parser: which names
// need quotes, string escapes, number spelling that round-trips, and the tokenizer.
//
//   Lexer lex(text);
//   while (lex.Peek().kind != TokenKind::kEnd) Use(lex.Next());
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dsc::text {

// [A-Za-z_][A-Za-z0-9_]*: the names ONNX's own parser accepts; everything else gets quotes.
bool IsSimpleIdentifier(std::string_view s);
std::string QuoteString(std::string_view s);  // "..." with \" \\ \n \t \r \xHH escapes
std::string FormatName(std::string_view s);   // bare when simple, else quoted
// The shortest spelling that parses back bit-exactly (so 0.1f prints "0.1", not %.9g's
// "0.100000001"), always recognizable as a float: "1.0", "1e-05", "inf", "-nan".
std::string FormatFloat(float f);
std::string FormatDouble(double d);

enum class TokenKind {
  kEnd,
  kError,     // a lexical error; `value` holds the message
  kIdent,     // [A-Za-z_][A-Za-z0-9_]*
  kString,    // "..."; `value` holds the unescaped contents
  kInt,       // [+-]?digits
  kFloat,     // [+-]?digits.digits[e[+-]digits] and the like
  kPunct,     // one of < > ( ) [ ] { } , : = ? . @ -
  kArrow,     // =>
  kEllipsis,  // ...
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string_view text;  // exactly as in the source
  std::string value;      // kString: contents; kError: message
  int line = 1;
  int column = 1;  // 1-based, in bytes
  bool Is(char punct) const { return kind == TokenKind::kPunct && text.size() == 1 && text[0] == punct; }
  bool IsName() const { return kind == TokenKind::kIdent || kind == TokenKind::kString; }
};

// Tokens on demand (one of lookahead) so that large tensor literals need no token array.
class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}
  const Token& Peek();
  Token Next();
  // Bytes of source not yet consumed (bounds how many values a literal can still hold).
  size_t remaining() const { return src_.size() - pos_; }
  // For an unquoted `[node/name]`: the raw text up to `close` on this line, trimmed. Must be
  // called right after Next() returned the opening bracket. Returns false (and fills `error`
  // with a kError token) if the line ends first.
  bool RawUntil(char close, std::string* out, Token* error);
  // Whether the next character (after blanks on this line) opens a quoted string; same
  // precondition as RawUntil.
  bool AtQuote();
  // The source line `line` (1-based), without its newline: for error messages.
  std::string_view LineText(int line) const;

 private:
  Token Scan();
  Token Make(TokenKind kind, size_t start, int line, int column);
  void SkipSpaceAndComments();
  std::string_view src_;
  size_t pos_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;
  bool has_peeked_ = false;
  Token peeked_;
};

}  // namespace dsc::text
