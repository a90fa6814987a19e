// Where the indexing kernels (GatherND/ScatterND, GatherElements/ScatterElements and their
// gradients) read or write: index tensors turned into checked element offsets, and the scatter
// reductions. Offsets are validated before anything is written, so a bad index never touches memory.
//
//   NdOffsets nd;  RETURN_IF_ERROR(nd.Init(data_dims, indices_dims, batch_dims));
//   RETURN_IF_ERROR(nd.Compute(ctx.input(1), describe, offsets_));   // one offset per index tuple
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/common/index_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {

inline int64_t IndexAt(const TensorView& t, int64_t i) {
  return t.dtype == DType::kInt32 ? t.data<int32_t>()[i] : t.data<int64_t>()[i];
}

inline Status CheckIndexDType(DType t) {
  if (t != DType::kInt64 && t != DType::kInt32)
    return InvalidArgument("indices must be int64 or int32, not ", DTypeName(t));
  return Status::OK();
}

// GatherND/ScatterND geometry. data:(B..., D_b..D_{b+k-1}, inner...), indices:(B..., T..., k):
// tuple t of batch bi addresses the slice data[bi, idx[bi, t, 0..k)] of `inner` elements.
struct NdOffsets {
  int64_t batch = 1, tuples = 0, k = 0, inner = 1, batch_stride = 0;
  std::vector<int64_t> dims, strides;  // the k indexed dims and their strides within one batch

  Status Init(const std::vector<int64_t>& data, const std::vector<int64_t>& idx, int64_t batch_dims) {
    const int64_t r = static_cast<int64_t>(data.size()), q = static_cast<int64_t>(idx.size());
    if (r < 1 || q < 1) return InvalidArgument("data and indices need rank >= 1");
    if (batch_dims < 0 || batch_dims >= std::min(q, r))
      return InvalidArgument("batch_dims ", batch_dims, " must be in [0, min(rank(data), rank(indices)))");
    for (int64_t i = 0; i < batch_dims; ++i)
      if (data[static_cast<size_t>(i)] != idx[static_cast<size_t>(i)])
        return InvalidArgument("batch dim ", i, " differs: data has ", data[static_cast<size_t>(i)], ", indices ",
                               idx[static_cast<size_t>(i)]);
    k = idx.back();
    if (k < 1 || k > r - batch_dims)
      return InvalidArgument("indices.shape[-1] = ", k, " must be in [1, ", r - batch_dims, "]");
    const size_t b = static_cast<size_t>(batch_dims);
    batch = Product(data, 0, b);
    tuples = Product(idx, b, idx.size() - 1);
    inner = Product(data, b + static_cast<size_t>(k));
    batch_stride = Product(data, b);
    dims.assign(data.begin() + batch_dims, data.begin() + batch_dims + k);
    strides.assign(static_cast<size_t>(k), 0);
    for (int64_t j = 0; j < k; ++j) strides[static_cast<size_t>(j)] = Product(data, b + static_cast<size_t>(j) + 1);
    return Status::OK();
  }

  // offsets[bi * tuples + t] = element offset of the addressed slice in data.
  Status Compute(const TensorView& idx, const std::string& describe, std::vector<int64_t>& offsets) const {
    offsets.resize(static_cast<size_t>(batch * tuples));
    for (int64_t bt = 0; bt < batch * tuples; ++bt) {
      int64_t off = (bt / std::max<int64_t>(tuples, 1)) * batch_stride;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t v = IndexAt(idx, bt * k + j), n = dims[static_cast<size_t>(j)];
        int64_t i;
        if (!NormalizeIndex(v, n, &i))
          return OutOfRange(describe, ": index ", v, " out of range for dim ", j, " of size ", n);
        off += i * strides[static_cast<size_t>(j)];
      }
      offsets[static_cast<size_t>(bt)] = off;
    }
    return Status::OK();
  }
};

// GatherElements/ScatterElements geometry: element e of indices (row-major over idx dims) maps to
// data at the same coordinates except along `axis`, where the index value is used.
struct ElementOffsets {
  static constexpr int64_t inner = 1;  // one element per index, where NdOffsets moves a slice
  int64_t axis = 0, axis_size = 0;
  std::vector<int64_t> idx_dims, data_strides;

  Status Init(const std::vector<int64_t>& data, const std::vector<int64_t>& idx, int64_t axis_attr) {
    if (data.empty()) return InvalidArgument("data needs rank >= 1");
    if (idx.size() != data.size())
      return InvalidArgument("indices rank ", idx.size(), " differs from data rank ", data.size());
    ASSIGN_OR_RETURN(axis, NormalizeAxis(axis_attr, static_cast<int64_t>(data.size())));
    for (size_t d = 0; d < data.size(); ++d)
      if (static_cast<int64_t>(d) != axis && idx[d] > data[d])
        return InvalidArgument("indices dim ", d, " (", idx[d], ") exceeds data dim (", data[d], ")");
    axis_size = data[static_cast<size_t>(axis)];
    idx_dims = idx;
    data_strides = ContiguousStrides(data);
    return Status::OK();
  }

  Status Compute(const TensorView& idx, const std::string& describe, std::vector<int64_t>& offsets) const {
    const int64_t n = Product(idx_dims), rank = static_cast<int64_t>(idx_dims.size());
    offsets.resize(static_cast<size_t>(n));
    std::vector<int64_t> coord(idx_dims.size(), 0);
    int64_t base = 0;  // data offset of coord with coord[axis] taken as 0
    const int64_t axis_stride = data_strides[static_cast<size_t>(axis)];
    for (int64_t e = 0; e < n; ++e) {
      const int64_t v = IndexAt(idx, e);
      int64_t i;
      if (!NormalizeIndex(v, axis_size, &i))
        return OutOfRange(describe, ": index ", v, " out of range for axis ", axis, " of size ", axis_size);
      offsets[static_cast<size_t>(e)] = base + i * axis_stride;
      for (int64_t d = rank - 1; d >= 0; --d) {  // odometer step over the indices' coordinates
        const size_t ds = static_cast<size_t>(d);
        const int64_t step = d == axis ? 0 : data_strides[ds];
        if (++coord[ds] < idx_dims[ds]) {
          base += step;
          break;
        }
        base -= step * (coord[ds] - 1);
        coord[ds] = 0;
      }
    }
    return Status::OK();
  }
};

inline StatusOr<ScatterReduction> ParseScatterReduction(const std::string& s) {
  if (s == "none") return ScatterReduction::kNone;
  if (s == "add") return ScatterReduction::kAdd;
  if (s == "mul") return ScatterReduction::kMul;
  if (s == "max") return ScatterReduction::kMax;
  if (s == "min") return ScatterReduction::kMin;
  return InvalidArgument("reduction '", s, "' is not one of none, add, mul, max, min");
}

// dst[off[i] + j] = f(dst[off[i] + j], src[i * inner + j]) in index order (duplicates accumulate).
template <typename T>
void ScatterSlices(T* dst, const T* src, const std::vector<int64_t>& offsets, int64_t inner, ScatterReduction r) {
  for (size_t i = 0; i < offsets.size(); ++i) {
    T* d = dst + offsets[i];
    const T* s = src + static_cast<int64_t>(i) * inner;
    for (int64_t j = 0; j < inner; ++j) d[j] = ScatterCombine(r, d[j], s[j]);
  }
}

// Scatter for any dtype: reduction none copies bytes; the others need arithmetic in float32,
// float64, int64 or int32 (checked by ScatterDTypeSupports at Init).
inline bool ScatterDTypeSupports(DType t, ScatterReduction r) {
  return r == ScatterReduction::kNone || t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kInt64 ||
         t == DType::kInt32;
}
inline void ScatterAnyDType(DType t, void* dst, const void* src, const std::vector<int64_t>& offsets, int64_t inner,
                            ScatterReduction r) {
  if (r == ScatterReduction::kNone) {
    DispatchByElementSize(DTypeSize(t), [&](auto w) {
      using W = decltype(w);
      ScatterSlices(static_cast<W*>(dst), static_cast<const W*>(src), offsets, inner, r);
    });
    return;
  }
  switch (t) {
    case DType::kFloat32: ScatterSlices(static_cast<float*>(dst), static_cast<const float*>(src), offsets, inner, r); break;
    case DType::kFloat64: ScatterSlices(static_cast<double*>(dst), static_cast<const double*>(src), offsets, inner, r); break;
    case DType::kInt64: ScatterSlices(static_cast<int64_t*>(dst), static_cast<const int64_t*>(src), offsets, inner, r); break;
    default: ScatterSlices(static_cast<int32_t*>(dst), static_cast<const int32_t*>(src), offsets, inner, r); break;
  }
}

}  // namespace dsc::cpu
