// The ONNX operators dscompile accepts, and the check that reports every unsupported node at once.
#pragma once

#include <string>

#include "ir/graph.h"

namespace dsc {

// Lowest and highest default-domain opset the frontend accepts.
inline constexpr int64_t kMinOpset = 13;
inline constexpr int64_t kMaxOpset = 17;

// Ops that only compute shapes or constants; fold-constants must remove them once shapes are static.
bool IsShapeComputationOp(const std::string& op_type);
// Ops the compiler can train through (the autodiff/kernel set) or fold away.
bool IsSupportedOp(const std::string& domain, const std::string& op_type);

// One error listing every node whose op is unsupported: name, op, opset.
Status CheckSupportedOps(const Graph& g);

}  // namespace dsc
