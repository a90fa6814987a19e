// Element and slice indexing ops: GatherElements, GatherND (batch_dims), ScatterElements and
// ScatterND (reduction none/add/mul/max/min); negative indices count from the end.
#include <algorithm>

#include "passes/const_eval/internal.h"

namespace dsc::const_eval {
namespace {

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

StatusOr<Reduction> ReductionOf(const Node& node) {
  const std::string r = node.GetString("reduction", "none");
  if (r == "none") return Reduction::kNone;
  if (r == "add") return Reduction::kAdd;
  if (r == "mul") return Reduction::kMul;
  if (r == "max") return Reduction::kMax;
  if (r == "min") return Reduction::kMin;
  return Bad(node, "reduction '", r, "' is not one of none, add, mul, max, min");
}

Status CheckIndices(const Node& node, const Tensor& idx) {
  if (idx.dtype() != DType::kInt64 && idx.dtype() != DType::kInt32)
    return Bad(node, "indices must be int64 or int32, got ", DTypeName(idx.dtype()));
  return Status::OK();
}

// out[o] = f(out[o], upd[u]); exact through int64 for integers, double for floats.
void Combine(Tensor& out, int64_t o, const Tensor& upd, int64_t u, Reduction r) {
  if (r == Reduction::kNone) {
    CopyElement(out, o, upd, u);
  } else if (IsIntLike(out.dtype())) {
    const int64_t a = LoadInt(out, o), b = LoadInt(upd, u);
    // Wrapping, as the integer kernels do; int64 overflow in C++ would be UB.
    const int64_t v = r == Reduction::kAdd ? static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b))
                      : r == Reduction::kMul ? static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b))
                      : r == Reduction::kMax ? std::max(a, b)
                                             : std::min(a, b);
    StoreInt(out, o, v);
  } else {
    const double a = LoadDouble(out, o), b = LoadDouble(upd, u);
    StoreDouble(out, o, r == Reduction::kAdd ? a + b : r == Reduction::kMul ? a * b
                        : r == Reduction::kMax ? std::max(a, b) : std::min(a, b));
  }
}

// Offsets in `data` of the elements GatherElements/ScatterElements address, one per index element.
StatusOr<std::vector<int64_t>> ElementOffsets(const Node& node, const Tensor& data, const Tensor& idx) {
  RETURN_IF_ERROR(CheckIndices(node, idx));
  if (data.rank() == 0) return Bad(node, "data must have rank >= 1");
  if (idx.rank() != data.rank()) return Bad(node, "indices rank ", idx.rank(), " differs from data rank ", data.rank());
  ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node, node.GetInt("axis", 0), data.rank()));
  for (int64_t d = 0; d < data.rank(); ++d)
    if (d != axis && idx.dims()[static_cast<size_t>(d)] > data.dims()[static_cast<size_t>(d)])
      return Bad(node, "indices dim ", d, " (", idx.dims()[static_cast<size_t>(d)], ") exceeds data's (",
                 data.dims()[static_cast<size_t>(d)], ")");
  const std::vector<int64_t> ds = RowMajorStrides(data.dims()), is = RowMajorStrides(idx.dims());
  const int64_t n = data.dims()[static_cast<size_t>(axis)];
  std::vector<int64_t> offsets;
  for (int64_t e = 0; e < idx.numel(); ++e) {
    int64_t off = 0;
    for (size_t d = 0; d < is.size(); ++d) {
      int64_t c = (e / is[d]) % idx.dims()[d];
      if (static_cast<int64_t>(d) == axis) {
        c = idx.GetAsInt(e);
        if (c < -n || c >= n) return Bad(node, "index ", c, " is out of range for axis ", axis, " of size ", n);
        if (c < 0) c += n;
      }
      off += c * ds[d];
    }
    offsets.push_back(off);
  }
  return offsets;
}

// GatherND/ScatterND: the start offset of each addressed slice and the slice length.
struct NdSlices {
  std::vector<int64_t> offsets;
  int64_t inner = 1, k = 0;
};

StatusOr<NdSlices> NdOffsets(const Node& node, const Tensor& data, const Tensor& idx, int64_t b) {
  RETURN_IF_ERROR(CheckIndices(node, idx));
  const int64_t r = data.rank(), q = idx.rank();
  if (r < 1 || q < 1) return Bad(node, "data and indices need rank >= 1");
  if (b < 0 || b >= std::min(r, q)) return Bad(node, "batch_dims ", b, " must be in [0, ", std::min(r, q), ")");
  for (size_t d = 0; d < static_cast<size_t>(b); ++d)
    if (data.dims()[d] != idx.dims()[d]) return Bad(node, "batch dim ", d, " differs between data and indices");
  NdSlices s;
  s.k = idx.dims().back();
  if (s.k < 1 || s.k > r - b) return Bad(node, "indices.shape[-1] = ", s.k, " must be in [1, ", r - b, "]");
  const std::vector<int64_t> ds = RowMajorStrides(data.dims());
  for (size_t d = static_cast<size_t>(b + s.k); d < data.dims().size(); ++d) s.inner *= data.dims()[d];
  int64_t per_batch = 1;
  for (size_t d = static_cast<size_t>(b); d + 1 < idx.dims().size(); ++d) per_batch *= idx.dims()[d];
  const int64_t batch_stride = b > 0 ? ds[static_cast<size_t>(b - 1)] : 0;
  for (int64_t t = 0; t * s.k < idx.numel(); ++t) {
    int64_t off = (t / std::max<int64_t>(per_batch, 1)) * batch_stride;
    for (int64_t j = 0; j < s.k; ++j) {
      const size_t d = static_cast<size_t>(b + j);
      int64_t v = idx.GetAsInt(t * s.k + j);
      const int64_t n = data.dims()[d];
      if (v < -n || v >= n) return Bad(node, "index ", v, " is out of range for dim ", d, " of size ", n);
      off += (v < 0 ? v + n : v) * ds[d];
    }
    s.offsets.push_back(off);
  }
  return s;
}

StatusOr<Outputs> EvalGatherElements(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  ASSIGN_OR_RETURN(std::vector<int64_t> offsets, ElementOffsets(node, *in[0], *in[1]));
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, in[0]->dtype(), in[1]->dims()));
  for (size_t e = 0; e < offsets.size(); ++e) CopyElement(out, static_cast<int64_t>(e), *in[0], offsets[e]);
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalScatterElements(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 3, 3));
  const Tensor& data = *in[0];
  const Tensor& upd = *in[2];
  if (upd.dims() != in[1]->dims()) return Bad(node, "updates must be shaped like indices");
  if (upd.dtype() != data.dtype()) return Bad(node, "updates and data differ in type");
  ASSIGN_OR_RETURN(Reduction r, ReductionOf(node));
  ASSIGN_OR_RETURN(std::vector<int64_t> offsets, ElementOffsets(node, data, *in[1]));
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, data.dtype(), data.dims()));
  for (int64_t i = 0; i < data.numel(); ++i) CopyElement(out, i, data, i);
  for (size_t e = 0; e < offsets.size(); ++e) Combine(out, offsets[e], upd, static_cast<int64_t>(e), r);
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalGatherND(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  const Tensor& data = *in[0];
  const int64_t b = node.GetInt("batch_dims", 0);
  ASSIGN_OR_RETURN(NdSlices s, NdOffsets(node, data, *in[1], b));
  std::vector<int64_t> dims(in[1]->dims().begin(), in[1]->dims().end() - 1);
  dims.insert(dims.end(), data.dims().begin() + b + s.k, data.dims().end());
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, data.dtype(), dims));
  for (size_t t = 0; t < s.offsets.size(); ++t)
    for (int64_t j = 0; j < s.inner; ++j) CopyElement(out, static_cast<int64_t>(t) * s.inner + j, data, s.offsets[t] + j);
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalScatterND(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 3, 3));
  const Tensor& data = *in[0];
  const Tensor& upd = *in[2];
  ASSIGN_OR_RETURN(Reduction r, ReductionOf(node));
  ASSIGN_OR_RETURN(NdSlices s, NdOffsets(node, data, *in[1], 0));
  std::vector<int64_t> expect(in[1]->dims().begin(), in[1]->dims().end() - 1);
  expect.insert(expect.end(), data.dims().begin() + s.k, data.dims().end());
  if (upd.dims() != expect) return Bad(node, "updates are not shaped indices.shape[:-1] + data.shape[k:]");
  if (upd.dtype() != data.dtype()) return Bad(node, "updates and data differ in type");
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, data.dtype(), data.dims()));
  for (int64_t i = 0; i < data.numel(); ++i) CopyElement(out, i, data, i);
  for (size_t t = 0; t < s.offsets.size(); ++t)
    for (int64_t j = 0; j < s.inner; ++j) Combine(out, s.offsets[t] + j, upd, static_cast<int64_t>(t) * s.inner + j, r);
  return Outputs{std::move(out)};
}

}  // namespace

void RegisterScatterGatherOps(OpTable& t) {
  t["GatherElements"] = EvalGatherElements;
  t["ScatterElements"] = EvalScatterElements;
  t["GatherND"] = EvalGatherND;
  t["ScatterND"] = EvalScatterND;
}

}  // namespace dsc::const_eval
