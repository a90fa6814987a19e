// The ONNX operators dscompile accepts, and the check that reports every unsupported node at once.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"

namespace dsc {

// Lowest default-domain opset the frontend accepts; the highest is the ONNX library's newest, so
// upgrading the library is what raises it (every op handler reads each opset's form of its op).
inline constexpr int64_t kMinOpset = 13;
int64_t MaxOpset();
// IR versions accepted: 3 is the first with opset imports; the newest is the library's.
inline constexpr int64_t kMinIrVersion = 3;
int64_t MaxIrVersion();
// The torch.onnx.export calls that write a model this frontend accepts, for error messages.
std::string ExportAdvice();

// Ops that only compute shapes or constants; fold-constants must remove them once shapes are static.
bool IsShapeComputationOp(const std::string& op_type);
// Ops the compiler can train through (the autodiff/kernel set) or fold away.
bool IsSupportedOp(const std::string& domain, const std::string& op_type);
// Every supported default-domain op, sorted, each with "compute" or "folded" (shape-only ops that
// must become constants); what `dscompile --list-ops` prints.
std::vector<std::pair<std::string, const char*>> SupportedOps();

// One error listing every node whose op is unsupported: name, op, opset.
Status CheckSupportedOps(const Graph& g);

}  // namespace dsc
