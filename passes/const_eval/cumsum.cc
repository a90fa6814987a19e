// CumSum<exclusive, reverse>(X, axis) on constants (position ids from a constant attention mask).
// Integers sum through int64 with numpy's wrapping; floats through double, rounded once per element.
#include "passes/const_eval/internal.h"

namespace dsc::const_eval {
namespace {

StatusOr<Outputs> EvalCumSum(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  const Tensor& x = *in[0];
  if (!IsFloat(x.dtype()) && !IsInteger(x.dtype()))
    return Bad(node, "does not accept element type ", DTypeName(x.dtype()));
  ASSIGN_OR_RETURN(const Tensor* axis_t, RequiredInput(node, in, 1));
  ASSIGN_OR_RETURN(int64_t axis_v, IntScalar(node, *axis_t, "axis"));
  ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node, axis_v, x.rank()));
  const bool exclusive = node.GetInt("exclusive", 0) != 0, reverse = node.GetInt("reverse", 0) != 0;
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, x.dtype(), x.dims()));
  // X viewed as (outer, len, inner) around the axis.
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dims()[static_cast<size_t>(d)];
  for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dims()[static_cast<size_t>(d)];
  const int64_t len = x.dims()[static_cast<size_t>(axis)];
  const bool ints = IsInteger(x.dtype());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < inner; ++k) {
      uint64_t iacc = 0;  // unsigned: wraps without UB, as numpy's int64 cumsum
      double facc = 0.0;
      for (int64_t s = 0; s < len; ++s) {
        const int64_t at = (o * len + (reverse ? len - 1 - s : s)) * inner + k;
        if (!exclusive) {
          if (ints) iacc += static_cast<uint64_t>(LoadInt(x, at));
          else facc += LoadDouble(x, at);
        }
        if (ints) StoreInt(out, at, static_cast<int64_t>(iacc));
        else StoreDouble(out, at, facc);
        if (exclusive) {
          if (ints) iacc += static_cast<uint64_t>(LoadInt(x, at));
          else facc += LoadDouble(x, at);
        }
      }
    }
  return Outputs{std::move(out)};
}

}  // namespace

void RegisterCumSumOps(OpTable& t) { t["CumSum"] = EvalCumSum; }

}  // namespace dsc::const_eval
