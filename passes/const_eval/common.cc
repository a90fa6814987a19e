// Shared plumbing of the constant evaluator: checked allocation, axes, broadcasting, exact loads and stores.
#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "passes/const_eval/internal.h"

namespace dsc::const_eval {

Status CheckOutputSize(const Node& node, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return Bad(node, "output dimension ", d, " is negative");
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      return OutOfRange(node.Describe(), ": output element count overflows int64");
    n *= d;
  }
  if (n > kMaxConstEvalElements)
    return OutOfRange(node.Describe(), ": refusing to materialise a constant of ", n, " elements (limit ",
                      kMaxConstEvalElements, ")");
  return Status::OK();
}

StatusOr<Tensor> NewTensor(const Node& node, DType dtype, const std::vector<int64_t>& dims) {
  if (DTypeSize(dtype) == 0) return Bad(node, "output element type is undefined");
  RETURN_IF_ERROR(CheckOutputSize(node, dims));
  return Tensor(dtype, dims);
}

const Tensor* OptionalInput(const Inputs& inputs, size_t i) { return i < inputs.size() ? inputs[i] : nullptr; }

StatusOr<const Tensor*> RequiredInput(const Node& node, const Inputs& inputs, size_t i) {
  const Tensor* t = OptionalInput(inputs, i);
  if (t == nullptr) return Bad(node, "input ", i, " is required but missing");
  return t;
}

Status CheckArity(const Node& node, const Inputs& inputs, size_t min, size_t max) {
  if (inputs.size() < min || inputs.size() > max) {
    if (min == max) return Bad(node, "expects ", min, " inputs, got ", inputs.size());
    return Bad(node, "expects ", min, " to ", max, " inputs, got ", inputs.size());
  }
  for (size_t i = 0; i < min; ++i)
    if (inputs[i] == nullptr) return Bad(node, "input ", i, " is required but missing");
  return Status::OK();
}

StatusOr<int64_t> NormalizeAxis(const Node& node, int64_t axis, int64_t rank, const char* what) {
  if (axis < -rank || axis >= rank)
    return Bad(node, what, " ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

StatusOr<std::vector<int64_t>> NormalizeAxes(const Node& node, const std::vector<int64_t>& axes, int64_t rank,
                                             const char* what) {
  std::vector<int64_t> out;
  std::set<int64_t> seen;
  for (int64_t a : axes) {
    ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(node, a, rank, what));
    if (!seen.insert(n).second) return Bad(node, what, " repeat axis ", a);
    out.push_back(n);
  }
  return out;
}

StatusOr<std::vector<int64_t>> IntList(const Node& node, const Tensor& t, const char* what) {
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return Bad(node, what, " must be int64 or int32, got ", DTypeName(t.dtype()));
  if (t.rank() > 1) return Bad(node, what, " must be 1-D, got rank ", t.rank());
  return t.ToInt64Vector();
}

StatusOr<int64_t> IntScalar(const Node& node, const Tensor& t, const char* what) {
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return Bad(node, what, " must be int64 or int32, got ", DTypeName(t.dtype()));
  if (t.numel() != 1) return Bad(node, what, " must hold one value, got ", t.numel());
  return t.GetAsInt(0);
}

int64_t LoadInt(const Tensor& t, int64_t i) {
  // Integer types convert to double exactly except int64, which GetAsInt reads directly.
  return t.GetAsInt(i);
}

void StoreInt(Tensor& t, int64_t i, int64_t v) {
  uint8_t* p = t.raw() + static_cast<size_t>(i) * DTypeSize(t.dtype());
  // C++20 defines narrowing integer conversions as modular, which is what numpy's astype does.
  switch (t.dtype()) {
    case DType::kInt64: std::memcpy(p, &v, 8); return;
    case DType::kInt32: { int32_t x = static_cast<int32_t>(v); std::memcpy(p, &x, 4); return; }
    case DType::kInt16: { int16_t x = static_cast<int16_t>(v); std::memcpy(p, &x, 2); return; }
    case DType::kInt8: *p = static_cast<uint8_t>(static_cast<int8_t>(v)); return;
    case DType::kUInt8: *p = static_cast<uint8_t>(v); return;
    case DType::kBool: *p = v != 0 ? 1 : 0; return;
    case DType::kFloat32: { float f = static_cast<float>(v); std::memcpy(p, &f, 4); return; }
    case DType::kFloat64: { double d = static_cast<double>(v); std::memcpy(p, &d, 8); return; }
    case DType::kFloat16:
    case DType::kBFloat16: t.SetFromDouble(i, static_cast<double>(static_cast<float>(v))); return;
    case DType::kUndefined: return;
  }
}

bool DoubleToInt64(double v, int64_t* out) {
  // 2^63 is exactly representable; every double in [-2^63, 2^63) truncates to a valid int64.
  constexpr double kLimit = 9223372036854775808.0;
  if (!(v >= -kLimit && v < kLimit)) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

void CopyElement(Tensor& dst, int64_t dst_index, const Tensor& src, int64_t src_index) {
  size_t size = DTypeSize(src.dtype());
  std::memcpy(dst.raw() + static_cast<size_t>(dst_index) * size, src.raw() + static_cast<size_t>(src_index) * size,
              size);
}

std::vector<int64_t> RowMajorStrides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

StatusOr<std::vector<int64_t>> BroadcastShapes(const Node& node, const std::vector<std::vector<int64_t>>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<int64_t> out(rank, 1);
  for (size_t k = 0; k < shapes.size(); ++k) {
    const auto& s = shapes[k];
    for (size_t i = 0; i < s.size(); ++i) {
      size_t o = rank - s.size() + i;
      int64_t d = s[i];
      if (d == out[o] || d == 1) continue;
      if (out[o] == 1) {
        out[o] = d;
        continue;
      }
      std::string all;
      for (const auto& t : shapes) all += (all.empty() ? "" : ", ") + ShapeToString([&] {
        Shape sh;
        for (int64_t x : t) sh.push_back(Dim::Static(x));
        return sh;
      }());
      return Bad(node, "shapes ", all, " cannot be broadcast (dimension ", d, " vs ", out[o], ")");
    }
  }
  return out;
}

std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& in, const std::vector<int64_t>& out) {
  std::vector<int64_t> dense = RowMajorStrides(in);
  std::vector<int64_t> strides(out.size(), 0);
  size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) strides[lead + i] = in[i] == 1 ? 0 : dense[i];
  return strides;
}

IndexWalker::IndexWalker(std::vector<int64_t> dims, std::vector<std::vector<int64_t>> strides,
                         std::vector<int64_t> bases)
    : dims_(std::move(dims)), strides_(std::move(strides)), index_(dims_.size(), 0) {
  offsets_ = bases.empty() ? std::vector<int64_t>(strides_.size(), 0) : std::move(bases);
}

void IndexWalker::Next() {
  for (size_t d = dims_.size(); d-- > 0;) {
    if (++index_[d] < dims_[d]) {
      for (size_t k = 0; k < strides_.size(); ++k) offsets_[k] += strides_[k][d];
      return;
    }
    for (size_t k = 0; k < strides_.size(); ++k) offsets_[k] -= strides_[k][d] * (dims_[d] - 1);
    index_[d] = 0;
  }
}

StatusOr<Tensor> GatherByStrides(const Node& node, const Tensor& src, const std::vector<int64_t>& out_dims,
                                 const std::vector<int64_t>& src_strides, int64_t src_base) {
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, src.dtype(), out_dims));
  IndexWalker walk(out_dims, {src_strides}, {src_base});
  for (int64_t i = 0; i < out.numel(); ++i, walk.Next()) CopyElement(out, i, src, walk.offset(0));
  return out;
}

}  // namespace dsc::const_eval
