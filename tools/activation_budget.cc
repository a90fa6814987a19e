// dscompile --activation-budget: choosing the activation-checkpointing segment count.
#include "tools/activation_budget.h"

#include "backend/plan_summary.h"  // HumanBytes

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <utility>

namespace dsc {

StatusOr<int64_t> ParseByteSize(const std::string& text, const std::string& what) {
  const char* begin = text.c_str();
  char* end = nullptr;
  const double number = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(number) || number < 0)
    return InvalidArgument(what, ": '", text, "' is not a size (bytes, or a number with B, KB, MB, GB, KiB, MiB, GiB)");
  // The rest of `text`, not of its C string: "5\0KiB" is not 5 bytes.
  std::string unit = text.substr(static_cast<size_t>(end - begin));
  unit.erase(std::remove_if(unit.begin(), unit.end(), [](unsigned char c) { return std::isspace(c); }), unit.end());
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},       {"b", 1},           {"kb", 1e3},        {"mb", 1e6},          {"gb", 1e9},
      {"tb", 1e12},  {"kib", 1024.0},    {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
  for (const auto& [name, scale] : kUnits) {
    if (unit != name) continue;
    const double bytes = number * scale;
    // At most 8388607 TiB (2^63 - 2^40, within int64_t): a whole number of tenths of a TiB, so any
    // size HumanBytes prints ("8388607.0 TiB" at most) parses back.
    constexpr double kMaxBytes = 8388607.0 * 1099511627776.0;
    if (bytes > kMaxBytes) return OutOfRange(what, ": '", text, "' is too large (at most 8388607 TiB)");
    if (bytes < 1) return InvalidArgument(what, ": '", text, "' is less than one byte");
    return static_cast<int64_t>(bytes);
  }
  return InvalidArgument(what, ": unknown unit '", text.substr(static_cast<size_t>(end - begin)), "' in '", text,
                         "' (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)");
}

StatusOr<std::optional<int64_t>> ChooseCheckpointsForBudget(int64_t budget, const BudgetTrialFn& trial,
                                                            std::ostream* log) {
  ASSIGN_OR_RETURN(const BudgetTrial none, trial(0));
  if (log)
    *log << "dscompile: --activation-budget " << HumanBytes(budget) << ": without checkpointing the arena is "
         << HumanBytes(none.arena_bytes) << "\n";
  if (none.arena_bytes <= budget) return std::optional<int64_t>();
  int64_t best_k = 0, best_arena = none.arena_bytes, growth = 0, previous = none.arena_bytes;
  for (int64_t k = 2;; ++k) {
    ASSIGN_OR_RETURN(const BudgetTrial t, trial(k));
    if (t.segments_made < k) {
      if (log) *log << "dscompile:   " << k << " segments: the forward has room for only " << t.segments_made << "\n";
      break;
    }
    if (log) *log << "dscompile:   " << k << " segments: " << HumanBytes(t.arena_bytes) << "\n";
    if (t.arena_bytes <= budget) return std::optional<int64_t>(k);
    if (t.arena_bytes < best_arena) best_arena = t.arena_bytes, best_k = k;
    growth = t.arena_bytes > previous && best_k > 0 ? growth + 1 : 0;
    previous = t.arena_bytes;
    if (growth >= kGiveUpAfterGrowth) break;
  }
  return InvalidArgument("--activation-budget ", HumanBytes(budget), " cannot be met: the smallest activation arena is ",
                         HumanBytes(best_arena),
                         best_k ? StrCat(" (", best_k, " checkpointing segments)") : std::string(" (without checkpointing)"),
                         "; a larger budget, a smaller train_micro_batch_size_per_gpu or a higher ZeRO stage would "
                         "lower the need");
}

}  // namespace dsc
