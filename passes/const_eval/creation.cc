// Ops that create or convert values: Constant, ConstantOfShape, Range, Cast, CastLike.
#include <cmath>
#include <cstring>
#include <limits>

#include "passes/const_eval/internal.h"

namespace dsc::const_eval {
namespace {

StatusOr<Outputs> EvalConstant(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 0, 0));
  int set = 0;
  for (const char* name : {"value", "value_float", "value_floats", "value_int", "value_ints", "sparse_value",
                           "value_string", "value_strings"})
    set += node.HasAttr(name) ? 1 : 0;
  if (set != 1) return Bad(node, "needs exactly one value attribute, has ", set);
  if (const Tensor* t = node.GetTensor("value")) return Outputs{*t};
  if (node.HasAttr("value_float")) return Outputs{Tensor::Scalar(DType::kFloat32, node.GetFloat("value_float", 0))};
  if (node.HasAttr("value_int")) {
    Tensor t(DType::kInt64, {});
    StoreInt(t, 0, node.GetInt("value_int", 0));
    return Outputs{std::move(t)};
  }
  if (node.HasAttr("value_floats")) {
    std::vector<float> v = node.GetFloats("value_floats");
    return Outputs{Tensor::FromVector(DType::kFloat32, {static_cast<int64_t>(v.size())}, v)};
  }
  if (node.HasAttr("value_ints")) {
    std::vector<int64_t> v = node.GetInts("value_ints");
    Tensor t(DType::kInt64, {static_cast<int64_t>(v.size())});
    for (size_t i = 0; i < v.size(); ++i) StoreInt(t, static_cast<int64_t>(i), v[i]);
    return Outputs{std::move(t)};
  }
  if (node.HasAttr("value")) return Bad(node, "attribute 'value' must be a tensor");
  return Unimplemented(node.Describe(), ": sparse and string constants are not supported");
}

// ConstantOfShape: the "value" attribute (one element, any type; default float 0) repeated over the shape.
StatusOr<Outputs> EvalConstantOfShape(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  ASSIGN_OR_RETURN(std::vector<int64_t> dims, IntList(node, *in[0], "shape"));
  Tensor value = Tensor::Scalar(DType::kFloat32, 0.0);
  if (node.HasAttr("value")) {
    const Tensor* v = node.GetTensor("value");
    if (v == nullptr || v->numel() != 1) return Bad(node, "attribute 'value' must be a one-element tensor");
    value = *v;
  }
  for (int64_t d : dims)
    if (d < 0) return Bad(node, "shape has negative dimension ", d);
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, value.dtype(), dims));
  for (int64_t i = 0; i < out.numel(); ++i) CopyElement(out, i, value, 0);
  return Outputs{std::move(out)};
}

// Integer Range: count = ceil((limit - start) / delta) computed in uint64 so no difference overflows;
// every produced value lies between start and limit, so wrapping arithmetic yields it exactly.
StatusOr<Tensor> IntRange(const Node& node, DType dtype, int64_t start, int64_t limit, int64_t delta) {
  if (delta == 0) return Bad(node, "delta is 0");
  uint64_t count = 0;
  if (delta > 0 && limit > start) {
    uint64_t diff = static_cast<uint64_t>(limit) - static_cast<uint64_t>(start);
    count = (diff - 1) / static_cast<uint64_t>(delta) + 1;
  } else if (delta < 0 && start > limit) {
    uint64_t diff = static_cast<uint64_t>(start) - static_cast<uint64_t>(limit);
    count = (diff - 1) / (uint64_t{0} - static_cast<uint64_t>(delta)) + 1;
  }
  if (count > static_cast<uint64_t>(kMaxConstEvalElements))
    return OutOfRange(node.Describe(), ": refusing to materialise a Range of ", count, " elements (limit ",
                      kMaxConstEvalElements, ")");
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, dtype, {static_cast<int64_t>(count)}));
  uint64_t v = static_cast<uint64_t>(start);
  for (int64_t i = 0; i < out.numel(); ++i, v += static_cast<uint64_t>(delta)) StoreInt(out, i, static_cast<int64_t>(v));
  return out;
}

// Floating Range accumulates in the element type (out[i] = out[i-1] + delta), as ONNX's function body and
// onnxruntime do, rather than computing start + i * delta.
template <typename T>
StatusOr<Tensor> FloatRange(const Node& node, DType dtype, T start, T limit, T delta) {
  if (delta == 0) return Bad(node, "delta is 0");
  double n = std::ceil(static_cast<double>(static_cast<T>(limit - start)) / static_cast<double>(delta));
  if (std::isnan(n)) return Bad(node, "Range of ", start, " to ", limit, " by ", delta, " has no defined length");
  if (n > static_cast<double>(kMaxConstEvalElements))
    return OutOfRange(node.Describe(), ": refusing to materialise a Range of ", n, " elements (limit ",
                      kMaxConstEvalElements, ")");
  int64_t count = n > 0 ? static_cast<int64_t>(n) : 0;
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, dtype, {count}));
  T v = start;
  for (int64_t i = 0; i < count; ++i, v += delta) StoreDouble(out, i, static_cast<double>(v));
  return out;
}

StatusOr<Outputs> EvalRange(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 3, 3));
  DType dtype = in[0]->dtype();
  for (size_t k = 0; k < 3; ++k) {
    if (in[k]->dtype() != dtype)
      return Bad(node, "input ", k, " has element type ", DTypeName(in[k]->dtype()), " but input 0 has ",
                 DTypeName(dtype));
    if (in[k]->numel() != 1) return Bad(node, "input ", k, " must be a scalar, has ", in[k]->numel(), " elements");
  }
  Tensor out;
  switch (dtype) {
    case DType::kInt64:
    case DType::kInt32:
    case DType::kInt16: {
      ASSIGN_OR_RETURN(out, IntRange(node, dtype, LoadInt(*in[0], 0), LoadInt(*in[1], 0), LoadInt(*in[2], 0)));
      break;
    }
    case DType::kFloat32: {
      ASSIGN_OR_RETURN(out, FloatRange<float>(node, dtype, static_cast<float>(LoadDouble(*in[0], 0)),
                                              static_cast<float>(LoadDouble(*in[1], 0)),
                                              static_cast<float>(LoadDouble(*in[2], 0))));
      break;
    }
    case DType::kFloat64: {
      ASSIGN_OR_RETURN(out, FloatRange<double>(node, dtype, LoadDouble(*in[0], 0), LoadDouble(*in[1], 0),
                                               LoadDouble(*in[2], 0)));
      break;
    }
    default:
      return Bad(node, "does not accept element type ", DTypeName(dtype));
  }
  return Outputs{std::move(out)};
}

// Float to integer truncates toward zero; a value the target type cannot hold (or NaN) is undefined in ONNX,
// so it is refused rather than folded to an arbitrary number.
bool FitsInteger(DType t, int64_t v) {
  switch (t) {
    case DType::kInt32: return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
    case DType::kInt16: return v >= std::numeric_limits<int16_t>::min() && v <= std::numeric_limits<int16_t>::max();
    case DType::kInt8: return v >= std::numeric_limits<int8_t>::min() && v <= std::numeric_limits<int8_t>::max();
    case DType::kUInt8: return v >= 0 && v <= std::numeric_limits<uint8_t>::max();
    default: return true;
  }
}

StatusOr<Tensor> CastTo(const Node& node, const Tensor& x, DType to) {
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, to, x.dims()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (IsIntLike(x.dtype())) {
      StoreInt(out, i, LoadInt(x, i));  // integers wrap into narrower ones, as numpy's astype does
    } else if (IsFloat(to)) {
      StoreDouble(out, i, LoadDouble(x, i));
    } else if (to == DType::kBool) {
      StoreInt(out, i, LoadDouble(x, i) != 0);  // NaN is nonzero
    } else {
      double v = LoadDouble(x, i);
      int64_t r;
      if (!DoubleToInt64(v, &r) || !FitsInteger(to, r))
        return OutOfRange(node.Describe(), ": ", DTypeName(x.dtype()), " value ", v, " does not fit in ",
                          DTypeName(to));
      StoreInt(out, i, r);
    }
  }
  return out;
}

StatusOr<Outputs> EvalCast(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  if (!node.HasAttr("to")) return Bad(node, "attribute 'to' is required");
  StatusOr<DType> to = DTypeFromOnnx(static_cast<int>(node.GetInt("to", 0)));
  if (!to.ok()) return Status(to.status().code(), StrCat(node.Describe(), ": ", to.status().message()));
  ASSIGN_OR_RETURN(Tensor out, CastTo(node, *in[0], *to));
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalCastLike(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  ASSIGN_OR_RETURN(Tensor out, CastTo(node, *in[0], in[1]->dtype()));
  return Outputs{std::move(out)};
}

}  // namespace

void RegisterCreationOps(OpTable& t) {
  t["Constant"] = EvalConstant;
  t["ConstantOfShape"] = EvalConstantOfShape;
  t["Range"] = EvalRange;
  t["Cast"] = EvalCast;
  t["CastLike"] = EvalCastLike;
}

}  // namespace dsc::const_eval
