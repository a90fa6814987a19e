// The mixed-precision part of dsinspect's summary: the regime, each op's compute dtype, every
// cast the precision pass inserted with its reason, and where the half-precision bytes are.
#pragma once

#include <ostream>

#include <nlohmann/json.hpp>

#include "backend/plan.h"

namespace dsc {

// null when the plan is fp32. Otherwise:
//   {regime: {kind, source, half, master_weights, optimizer_states, fp32_batchnorm, loss_scaling,
//             check_overflow, grad_accum, communication},
//    compute: {program: {op: {dtype: count}}}   (dtype of each node's first float output, or of
//             its first float input for in-place ops),
//    casts: [{cast, value, to, for, reason}],
//    activation_bytes_by_dtype: {dtype: bytes}   (micro_step values, one buffer per value)}
nlohmann::json PrecisionSummary(const Plan& plan);

void RenderPrecisionText(std::ostream& os, const nlohmann::json& precision);

}  // namespace dsc
