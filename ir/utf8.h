// UTF-8 validation of names and strings that enter the IR: plans, dumps and metadata are JSON,
// whose writer throws on invalid UTF-8, so such strings are refused where they arrive.
#pragma once

#include <concepts>
#include <string>

#include "ir/status.h"

namespace dsc {

// True for well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool IsValidUtf8(const std::string& s);

// `s` with printable ASCII kept, backslash and every other byte written as \xNN.
std::string EscapeBytes(const std::string& s);

// InvalidArgument("<what> \"<escaped>\" is not valid UTF-8") unless `s` is valid.
Status CheckUtf8(const std::string& s, const std::string& what);
// The same with `what()` built only on failure: the verifier checks every name of every graph.
template <typename F>
  requires std::invocable<F&>
Status CheckUtf8(const std::string& s, F&& what) {
  return IsValidUtf8(s) ? Status::OK() : CheckUtf8(s, std::string(what()));
}

}  // namespace dsc
