// Batch-size resolution: train_batch_size = micro batch × gradient accumulation × world size,
// completed from whichever two (or one) of the three keys are given, as DeepSpeed does — except
// that what DeepSpeed's floor divisions would silently drop is refused with the arithmetic shown.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "frontend/config/section_reader.h"

namespace dsc {

struct BatchSizes {
  int64_t train_batch_size = 0;
  int64_t train_micro_batch_size_per_gpu = 0;
  int64_t gradient_accumulation_steps = 0;
};

// Reads the three keys from the top level of `config` ("auto" and null mean "derive it").
StatusOr<BatchSizes> ResolveBatchSizes(ParseContext& ctx, const nlohmann::json& config, int64_t world_size);

}  // namespace dsc
