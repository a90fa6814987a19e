// dscompile --activation-budget: the number of activation-checkpointing segments that keeps a
// plan's activation arena within a byte budget with the least recomputation.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>

#include "ir/status.h"

namespace dsc {

// "1500000", "512KiB", "1.5 GiB", "2GB": bytes, with an optional unit B, KB/MB/GB/TB (powers of
// 1000) or KiB/MiB/GiB/TiB (powers of 1024), case-insensitive, at most 8388607 TiB (what HumanBytes
// prints of any size parses back); `what` names the value in errors.
StatusOr<int64_t> ParseByteSize(const std::string& text, const std::string& what);

// The activation arena of a plan compiled with `segments` checkpointing segments (0: without
// activation checkpointing), and how many segments the rematerialize pass actually made (it makes
// fewer when the forward is too short for more).
struct BudgetTrial {
  int64_t arena_bytes = 0;
  int64_t segments_made = 0;
};
using BudgetTrialFn = std::function<StatusOr<BudgetTrial>(int64_t segments)>;

// nullopt when the plan without checkpointing fits `budget`; else the fewest segments whose plan
// fits (every segment but the last is recomputed, so fewer segments recompute less). Tries 0, then
// 2, 3, ... until one fits, the pass makes no more segments, or the arena has grown for
// kGiveUpAfterGrowth counts in a row past its smallest (checkpoints kept across segments outweigh
// what they save). Fails naming the smallest arena found and its segment count. `log` (may be
// null) gets one line per trial.
inline constexpr int kGiveUpAfterGrowth = 4;
StatusOr<std::optional<int64_t>> ChooseCheckpointsForBudget(int64_t budget, const BudgetTrialFn& trial,
                                                            std::ostream* log);

}  // namespace dsc
