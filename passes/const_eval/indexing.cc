// Indexing ops: Slice (ONNX clamping, negative steps), Gather (negative indices) and Trilu.
#include <algorithm>
#include <cstring>
#include <set>

#include "passes/const_eval/internal.h"

namespace dsc::const_eval {
namespace {

// Slice: inputs starts/ends/axes/steps (opset 10+), or the starts/ends/axes attributes of opset 1.
StatusOr<Outputs> EvalSlice(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 5));
  const Tensor& x = *in[0];
  std::vector<int64_t> starts, ends, axes, steps;
  if (in.size() == 1) {
    if (!node.HasAttr("starts") || !node.HasAttr("ends")) return Bad(node, "starts and ends are required");
    starts = node.GetInts("starts");
    ends = node.GetInts("ends");
    axes = node.GetInts("axes");
  } else {
    RETURN_IF_ERROR(CheckArity(node, in, 3, 5));
    ASSIGN_OR_RETURN(starts, IntList(node, *in[1], "starts"));
    ASSIGN_OR_RETURN(ends, IntList(node, *in[2], "ends"));
    if (const Tensor* t = OptionalInput(in, 3)) {
      ASSIGN_OR_RETURN(axes, IntList(node, *t, "axes"));
    }
    if (const Tensor* t = OptionalInput(in, 4)) {
      ASSIGN_OR_RETURN(steps, IntList(node, *t, "steps"));
    }
  }
  size_t n = starts.size();
  if (ends.size() != n) return Bad(node, "starts has ", n, " values but ends has ", ends.size());
  if (axes.empty()) {
    for (size_t i = 0; i < n; ++i) axes.push_back(static_cast<int64_t>(i));
  } else if (axes.size() != n) {
    return Bad(node, "axes has ", axes.size(), " values but starts has ", n);
  }
  if (steps.empty()) steps.assign(n, 1);
  if (steps.size() != n) return Bad(node, "steps has ", steps.size(), " values but starts has ", n);
  ASSIGN_OR_RETURN(axes, NormalizeAxes(node, axes, x.rank()));

  std::vector<int64_t> dims = x.dims();
  std::vector<int64_t> strides = RowMajorStrides(x.dims());
  int64_t base = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t a = static_cast<size_t>(axes[i]);
    int64_t dim = x.dims()[a], step = steps[i];
    if (step == 0) return Bad(node, "steps[", i, "] is 0");
    int64_t start = starts[i], end = ends[i];
    if (start < 0) start += dim;  // cannot overflow: start < 0 <= dim
    if (end < 0) end += dim;
    int64_t count = 0;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      if (end > start) count = (end - start - 1) / step + 1;
    } else if (dim > 0) {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      // -step overflows for INT64_MIN, so divide in uint64.
      if (start > end)
        count = static_cast<int64_t>((static_cast<uint64_t>(start - end) - 1) / (uint64_t{0} - static_cast<uint64_t>(step)) + 1);
    }
    dims[a] = count;
    if (count > 0) base += start * strides[a];
    // With two or more elements |step| < dim, so the stride cannot overflow; otherwise it is never applied.
    strides[a] = count > 1 ? step * strides[a] : 0;
  }
  ASSIGN_OR_RETURN(Tensor out, GatherByStrides(node, x, dims, strides, base));
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalGather(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  const Tensor& x = *in[0];
  const Tensor& idx = *in[1];
  if (idx.dtype() != DType::kInt64 && idx.dtype() != DType::kInt32)
    return Bad(node, "indices must be int64 or int32, got ", DTypeName(idx.dtype()));
  if (x.rank() == 0) return Bad(node, "cannot gather from a scalar");
  ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node, node.GetInt("axis", 0), x.rank()));
  size_t a = static_cast<size_t>(axis);
  int64_t dim = x.dims()[a];
  std::vector<int64_t> dims(x.dims().begin(), x.dims().begin() + axis);
  dims.insert(dims.end(), idx.dims().begin(), idx.dims().end());
  dims.insert(dims.end(), x.dims().begin() + axis + 1, x.dims().end());
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, x.dtype(), dims));
  std::vector<int64_t> positions;
  for (int64_t i = 0; i < idx.numel(); ++i) {
    int64_t p = idx.GetAsInt(i);
    if (p < -dim || p >= dim) return Bad(node, "index ", p, " is out of range for axis ", axis, " of size ", dim);
    positions.push_back(p < 0 ? p + dim : p);
  }
  size_t elem = DTypeSize(x.dtype());
  int64_t outer = 1;
  for (size_t d = 0; d < a; ++d) outer *= x.dims()[d];
  size_t inner = elem;
  for (size_t d = a + 1; d < x.dims().size(); ++d) inner *= static_cast<size_t>(x.dims()[d]);
  if (inner == 0) return Outputs{std::move(out)};
  uint8_t* dst = out.raw();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t p : positions) {
      std::memcpy(dst, x.raw() + (static_cast<size_t>(o * dim + p)) * inner, inner);
      dst += inner;
    }
  return Outputs{std::move(out)};
}

// Trilu: keeps elements with j - i >= k (upper=1) or j - i <= k (upper=0) in the last two dims.
StatusOr<Outputs> EvalTrilu(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 2));
  const Tensor& x = *in[0];
  if (x.rank() < 2) return Bad(node, "input must have rank >= 2, got ", x.rank());
  int64_t k = 0;
  if (const Tensor* t = OptionalInput(in, 1)) {
    ASSIGN_OR_RETURN(k, IntScalar(node, *t, "k"));
  }
  bool upper = node.GetInt("upper", 1) != 0;
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, x.dtype(), x.dims()));
  int64_t rows = x.dims()[x.dims().size() - 2], cols = x.dims().back();
  for (int64_t e = 0; e < x.numel(); ++e) {
    int64_t j = e % cols, i = (e / cols) % rows;
    // j - i cannot overflow (both are small dims) and k is compared, never added.
    bool keep = upper ? (j - i >= k) : (j - i <= k);
    if (keep) CopyElement(out, e, x, e);
  }
  return Outputs{std::move(out)};
}

// NonZero: the indices of the nonzero elements, (rank, count) int64, in row-major order. Only ever
// folded: the legacy exporter indexes by NonZero(ConstantOfShape(shape)), constant once shapes are.
StatusOr<Outputs> EvalNonZero(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  const Tensor& x = *in[0];
  std::vector<int64_t> hits;
  for (int64_t e = 0; e < x.numel(); ++e)
    if (IsIntLike(x.dtype()) ? LoadInt(x, e) != 0 : LoadDouble(x, e) != 0.0) hits.push_back(e);  // NaN is nonzero
  const int64_t rank = x.rank(), count = static_cast<int64_t>(hits.size());
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, DType::kInt64, {rank, count}));
  const std::vector<int64_t> strides = RowMajorStrides(x.dims());
  for (int64_t h = 0; h < count; ++h)
    for (int64_t a = 0; a < rank; ++a)
      StoreInt(out, a * count + h, hits[static_cast<size_t>(h)] / strides[a] % x.dims()[a]);
  return Outputs{std::move(out)};
}

}  // namespace

void RegisterIndexingOps(OpTable& t) {
  t["Slice"] = EvalSlice;
  t["Gather"] = EvalGather;
  t["Trilu"] = EvalTrilu;
  t["NonZero"] = EvalNonZero;
}

}  // namespace dsc::const_eval
