// UTF-8 validation and byte escaping for error messages.
#include "ir/utf8.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace dsc {

namespace {

// The offset of the first byte that does not start a well-formed sequence, or npos.
size_t FirstInvalidByte(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return i;
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

}  // namespace

bool IsValidUtf8(const std::string& s) { return FirstInvalidByte(s) == std::string::npos; }

std::string EscapeBytes(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

Status CheckUtf8(const std::string& s, const std::string& what) {
  const size_t bad = FirstInvalidByte(s);
  if (bad == std::string::npos) return Status::OK();
  // A long string (a graph signature of kilobytes) is shown around its first bad byte only.
  constexpr size_t kShown = 120, kBefore = 40, kAfter = 40;
  if (s.size() <= kShown) return InvalidArgument(what, " \"", EscapeBytes(s), "\" is not valid UTF-8");
  const size_t from = bad > kBefore ? bad - kBefore : 0, to = std::min(s.size(), bad + kAfter);
  return InvalidArgument(what, " is not valid UTF-8 at byte ", bad, " of ", s.size(), ": ", from > 0 ? "..." : "", "\"",
                         EscapeBytes(s.substr(from, to - from)), "\"", to < s.size() ? "..." : "");
}

}  // namespace dsc
