// Reductions: ReduceSum, ReduceProd, ReduceMax, ReduceMin, ReduceMean with keepdims, negative axes,
// axes as attribute (opset <= 17) or input (ReduceSum 13+, the others 18+) and noop_with_empty_axes.
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include "passes/const_eval/internal.h"

namespace dsc::const_eval {
namespace {

enum class Reduce { kSum, kProd, kMax, kMin, kMean };

// Bounds of an integer element type: the value an empty ReduceMax/ReduceMin yields (opset 18 semantics).
int64_t IntTypeLowest(DType t) {
  switch (t) {
    case DType::kInt32: return std::numeric_limits<int32_t>::min();
    case DType::kInt16: return std::numeric_limits<int16_t>::min();
    case DType::kInt8: return std::numeric_limits<int8_t>::min();
    case DType::kUInt8:
    case DType::kBool: return 0;
    default: return std::numeric_limits<int64_t>::min();
  }
}
int64_t IntTypeMax(DType t) {
  switch (t) {
    case DType::kInt32: return std::numeric_limits<int32_t>::max();
    case DType::kInt16: return std::numeric_limits<int16_t>::max();
    case DType::kInt8: return std::numeric_limits<int8_t>::max();
    case DType::kUInt8: return std::numeric_limits<uint8_t>::max();
    case DType::kBool: return 1;
    default: return std::numeric_limits<int64_t>::max();
  }
}

int64_t IntStep(Reduce r, int64_t acc, int64_t v) {
  switch (r) {
    case Reduce::kSum:
    case Reduce::kMean: return static_cast<int64_t>(static_cast<uint64_t>(acc) + static_cast<uint64_t>(v));
    case Reduce::kProd: return static_cast<int64_t>(static_cast<uint64_t>(acc) * static_cast<uint64_t>(v));
    case Reduce::kMax: return v > acc ? v : acc;
    case Reduce::kMin: return v < acc ? v : acc;
  }
  return acc;
}

double FloatStep(Reduce r, double acc, double v) {
  switch (r) {
    case Reduce::kSum:
    case Reduce::kMean: return acc + v;
    case Reduce::kProd: return acc * v;
    case Reduce::kMax: return std::isnan(acc) || std::isnan(v) ? NAN : (v > acc ? v : acc);
    case Reduce::kMin: return std::isnan(acc) || std::isnan(v) ? NAN : (v < acc ? v : acc);
  }
  return acc;
}

template <Reduce kOp>
StatusOr<Outputs> EvalReduce(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 2));
  const Tensor& x = *in[0];
  std::vector<int64_t> axes = node.GetInts("axes");
  if (const Tensor* t = OptionalInput(in, 1)) {
    ASSIGN_OR_RETURN(axes, IntList(node, *t, "axes"));
  }
  bool keepdims = node.GetInt("keepdims", 1) != 0;
  if (axes.empty()) {
    if (node.GetInt("noop_with_empty_axes", 0) != 0) {
      RETURN_IF_ERROR(CheckOutputSize(node, x.dims()));
      return Outputs{x};
    }
    for (int64_t a = 0; a < x.rank(); ++a) axes.push_back(a);
  }
  ASSIGN_OR_RETURN(axes, NormalizeAxes(node, axes, x.rank()));
  std::set<int64_t> reduced(axes.begin(), axes.end());
  std::vector<int64_t> out_dims, kept_dims;  // kept_dims: keepdims layout, for strides
  int64_t group = 1;                         // elements folded into each output
  for (int64_t a = 0; a < x.rank(); ++a) {
    int64_t d = x.dims()[static_cast<size_t>(a)];
    if (reduced.count(a)) {
      group *= d;
      kept_dims.push_back(1);
      if (keepdims) out_dims.push_back(1);
    } else {
      kept_dims.push_back(d);
      out_dims.push_back(d);
    }
  }
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, x.dtype(), out_dims));
  bool ints = IsIntLike(x.dtype());
  if (group == 0 && kOp == Reduce::kMean && ints) return Bad(node, "integer mean of an empty set");
  std::vector<int64_t> iacc(static_cast<size_t>(out.numel()));
  std::vector<double> facc(static_cast<size_t>(out.numel()));
  int64_t iinit = kOp == Reduce::kProd ? 1 : kOp == Reduce::kMax ? IntTypeLowest(x.dtype())
                : kOp == Reduce::kMin ? IntTypeMax(x.dtype()) : 0;
  double finit = kOp == Reduce::kProd ? 1.0 : kOp == Reduce::kMax ? -INFINITY : kOp == Reduce::kMin ? INFINITY : 0.0;
  std::fill(iacc.begin(), iacc.end(), iinit);
  std::fill(facc.begin(), facc.end(), finit);
  // Walk the input once; each element lands on the output index with reduced coordinates dropped.
  IndexWalker walk(x.dims(), {BroadcastStrides(kept_dims, x.dims())});
  for (int64_t i = 0; i < x.numel(); ++i, walk.Next()) {
    size_t o = static_cast<size_t>(walk.offset(0));
    if (ints) iacc[o] = IntStep(kOp, iacc[o], LoadInt(x, i));
    else facc[o] = FloatStep(kOp, facc[o], LoadDouble(x, i));
  }
  for (int64_t o = 0; o < out.numel(); ++o) {
    size_t u = static_cast<size_t>(o);
    if (ints) StoreInt(out, o, kOp == Reduce::kMean ? iacc[u] / group : iacc[u]);  // truncates, like ONNX's reference
    else StoreDouble(out, o, kOp == Reduce::kMean ? facc[u] / static_cast<double>(group) : facc[u]);
  }
  return Outputs{std::move(out)};
}

}  // namespace

void RegisterReduceOps(OpTable& t) {
  t["ReduceSum"] = EvalReduce<Reduce::kSum>;
  t["ReduceProd"] = EvalReduce<Reduce::kProd>;
  t["ReduceMax"] = EvalReduce<Reduce::kMax>;
  t["ReduceMin"] = EvalReduce<Reduce::kMin>;
  t["ReduceMean"] = EvalReduce<Reduce::kMean>;
}

}  // namespace dsc::const_eval
