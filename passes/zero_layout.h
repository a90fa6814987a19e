// Where zero-partition reduces gradients, for the passes before it that lay out micro_step.
#pragma once

#include <cstdint>

namespace dsc {

// On more than one rank, zero-partition reduces each micro-step's gradient inside micro_step at
// stages 2-3, and at stage 0 with one micro-step per step (the reduction overlaps the backward);
// otherwise it reduces the accumulators in step, and micro_step has no collectives.
inline bool ReducesInMicroStep(int stage, int64_t gradient_accumulation_steps) {
  return stage >= 2 || (stage == 0 && gradient_accumulation_steps == 1);
}

}  // namespace dsc
