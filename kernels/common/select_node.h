// Reads a TopK, ArgMax or ArgMin node into select::Lines once at Init, for kernels/cpu/select.cc and
// kernels/cuda/select.cu; the comparisons are kernels/common/select_math.h.
//   ASSIGN_OR_RETURN(select::Lines l, select::ReadLines(node));
//
// X is viewed as (outer, len, inner) around the axis; each of the outer * inner lines gives `k`
// outputs (TopK) or one (ArgMax/ArgMin, keepdims or not: the same elements). TopK's K is the
// output's extent along the axis (shapes are static when kernels are made); a constant K input
// must agree with it, and one computed at run time is refused: the output shape depends on it.
#pragma once

#include <vector>

#include "kernels/cpu/core_util.h"

namespace dsc::select {

struct Lines {
  int64_t outer = 1, len = 1, inner = 1;
  int64_t k = 1;          // outputs per line
  bool largest = true;    // TopK's `largest`; ArgMax (true) or ArgMin (false)
  bool select_last = false;
  int64_t lines() const { return outer * inner; }
};

inline StatusOr<Lines> ReadLines(const Node& node) {
  ASSIGN_OR_RETURN(std::vector<int64_t> xd, cpu::StaticDims(node.input(0)));
  ASSIGN_OR_RETURN(std::vector<int64_t> yd, cpu::StaticDims(node.output(0)));
  const bool topk = node.op_type() == "TopK";
  const int64_t rank = static_cast<int64_t>(xd.size());
  if (rank == 0) return InvalidArgument("input is a scalar; ", node.op_type(), " needs an axis");
  ASSIGN_OR_RETURN(int64_t axis, cpu::NormalizeAxis(node.GetInt("axis", topk ? -1 : 0), rank));
  const size_t a = static_cast<size_t>(axis);
  Lines l;
  l.outer = cpu::Product(xd, 0, a);
  l.len = xd[a];
  l.inner = cpu::Product(xd, a + 1);
  if (topk) {
    l.largest = node.GetInt("largest", 1) != 0;
    if (yd.size() != xd.size()) return InvalidArgument("output rank differs from the input's");
    l.k = yd[a];
    const Value* kv = node.input(1);
    if (!kv) return InvalidArgument("needs its K input (opset 10+ TopK)");
    if (!kv->is_initializer())
      return Unimplemented("K '", kv->name(), "' is computed at run time; dscompile's TopK needs it "
                           "constant after fold-constants (the output shape depends on it)");
    const std::vector<int64_t> kk = kv->initializer().ToInt64Vector();
    if (kk.size() != 1 || kk[0] != l.k)
      return InvalidArgument("K must hold one value equal to the output's extent ", l.k,
                             " along axis ", axis);
    if (l.k > l.len) return InvalidArgument("K ", l.k, " exceeds the axis extent ", l.len);
  } else {
    l.k = 1;
    l.largest = node.op_type() == "ArgMax";
    l.select_last = node.GetInt("select_last_index", 0) != 0;
    if (l.len == 0) return InvalidArgument("reduces an axis of extent 0");
  }
  return l;
}

}  // namespace dsc::select
