// libFuzzer target: dscompile --activation-budget SIZE through ParseByteSize (tools/activation_budget.h).
// Any text parses to a positive byte count or fails naming the option and the text; a count printed
// by HumanBytes (what dscompile reports the budget as) parses back to within the printed digit.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

#include "backend/plan_summary.h"
#include "tools/activation_budget.h"

namespace {

[[noreturn]] void Fail(const std::string& text, const std::string& why) {
  std::cerr << "fuzz_byte_size: '" << text << "': " << why << "\n";
  std::abort();
}

// HumanBytes writes "N B" exactly, else one decimal of KiB..TiB: half a unit of that decimal,
// plus the byte ParseByteSize's truncation to whole bytes may lose.
double PrintedPrecision(const std::string& printed) {
  static const std::pair<const char*, double> kUnits[] = {
      {" KiB", 1024.0}, {" MiB", 1048576.0}, {" GiB", 1073741824.0}, {" TiB", 1099511627776.0}};
  for (const auto& [suffix, scale] : kUnits)
    if (printed.ends_with(suffix)) return 0.05 * scale + 1;
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string what = "--activation-budget";
  dsc::StatusOr<int64_t> bytes = dsc::ParseByteSize(text, what);
  if (!bytes.ok()) {
    const std::string& m = bytes.status().message();
    if (m.find(what) == std::string::npos || m.find("'" + text + "'") == std::string::npos)
      Fail(text, "the error does not name the option and the text: " + m);
    return 0;
  }
  if (*bytes <= 0) Fail(text, "parsed to " + std::to_string(*bytes) + " bytes");
  const std::string printed = dsc::HumanBytes(*bytes);
  dsc::StatusOr<int64_t> again = dsc::ParseByteSize(printed, what);
  if (!again.ok()) Fail(text, "HumanBytes printed '" + printed + "', which does not parse: " + again.status().message());
  // Half the printed tenth, plus the doubles' own rounding at this size (a 1e17 count is a
  // multiple of 16 as a double, and "97656.2 TiB" is not exact in binary either).
  const double off = static_cast<double>(*again) - static_cast<double>(*bytes);
  if (std::abs(off) > PrintedPrecision(printed) + 1e-15 * static_cast<double>(*bytes))
    Fail(text, std::to_string(*bytes) + " bytes printed as '" + printed + "' parse back as " + std::to_string(*again));
  return 0;
}
