// The end-of-run summary dsrun prints on rank 0: throughput (steps, samples and, for token models,
// tokens per second), the steps' wall time split into compute, communication, data and idle/other,
// memory per rank by kind as planned and as allocated, and the skipped steps.
//
//   StatusOr<TrainSummary> s = Train(plan, opts, std::move(data));
//   std::cerr << RenderRunSummary(*s);
#pragma once

#include <string>

#include "runtime/trainer.h"

namespace dsc {

std::string RenderRunSummary(const TrainSummary& s);

}  // namespace dsc
