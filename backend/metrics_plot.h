// The per-step loss, learning rate and gradient norm of a dsrun --metrics file as an SVG
// (dsinspect --plot-metrics), for people without TensorBoard.
#pragma once

#include <istream>
#include <string>

#include "ir/status.h"

namespace dsc {

// Reads `jsonl_path` (one JSON object per line with at least "step" and "loss"; "lr", "grad_norm",
// "loss_scale" and "skipped" when present) and draws one panel per series: loss, lr, grad_norm,
// and loss_scale when it changes. Skipped steps (fp16 overflow) are marked on the loss panel; a null
// grad_norm leaves a gap. Errors name the file and line.
StatusOr<std::string> PlotMetricsSvg(const std::string& jsonl_path);
// The same from a stream already open; `name` stands for the file in errors and in the title.
StatusOr<std::string> PlotMetricsSvg(std::istream& in, const std::string& name);

}  // namespace dsc
