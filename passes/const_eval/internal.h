// Shared plumbing of the constant evaluator's op families: the op table type, checked tensor creation,
// axis normalisation, numpy broadcasting and exact element loads/stores. Private to passes/const_eval.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"
#include "ir/tensor.h"
#include "passes/const_eval.h"

namespace dsc::const_eval {

using Inputs = std::vector<const Tensor*>;
using Outputs = std::vector<Tensor>;
using EvalFn = StatusOr<Outputs> (*)(const Node& node, const Inputs& inputs);
using OpTable = std::unordered_map<std::string, EvalFn>;

// Each op family adds its ops to the table built once in const_eval.cc.
void RegisterElementwiseOps(OpTable& table);  // elementwise.cc: arithmetic, comparison, logic, Where
void RegisterShapeOps(OpTable& table);        // shape_ops.cc: Shape, Reshape, Transpose, Concat, Split, ...
void RegisterIndexingOps(OpTable& table);     // indexing.cc: Slice, Gather, Trilu, NonZero
void RegisterCreationOps(OpTable& table);     // creation.cc: Constant, ConstantOfShape, Range, Cast
void RegisterReduceOps(OpTable& table);       // reduce.cc: ReduceSum/Prod/Max/Min/Mean
void RegisterScatterGatherOps(OpTable& table); // scatter_gather.cc: GatherElements/ND, ScatterElements/ND
void RegisterEinsumOps(OpTable& table);        // einsum.cc: Einsum
void RegisterCumSumOps(OpTable& table);       // cumsum.cc: CumSum

// InvalidArgument prefixed with the node, the way every evaluator error names it.
template <typename... Args>
Status Bad(const Node& node, const Args&... args) {
  return InvalidArgument(node.Describe(), ": ", args...);
}

// Validates dims (non-negative, product fits int64, at most kMaxConstEvalElements) before anything is allocated.
Status CheckOutputSize(const Node& node, const std::vector<int64_t>& dims);
// A zero-filled tensor, after CheckOutputSize.
StatusOr<Tensor> NewTensor(const Node& node, DType dtype, const std::vector<int64_t>& dims);

// Input i, or an error if it is missing (omitted optional inputs arrive as nullptr).
StatusOr<const Tensor*> RequiredInput(const Node& node, const Inputs& inputs, size_t i);
const Tensor* OptionalInput(const Inputs& inputs, size_t i);
// Checks the number of inputs the node declares (omitted optional ones included).
Status CheckArity(const Node& node, const Inputs& inputs, size_t min, size_t max);

// Maps an axis in [-rank, rank-1] to [0, rank-1]; anything else is an error naming `what`.
StatusOr<int64_t> NormalizeAxis(const Node& node, int64_t axis, int64_t rank, const char* what = "axis");
// Normalises a list of axes and rejects duplicates.
StatusOr<std::vector<int64_t>> NormalizeAxes(const Node& node, const std::vector<int64_t>& axes, int64_t rank,
                                             const char* what = "axes");
// The values of an int32/int64 tensor of rank <= 1 (a shape, axes, starts, repeats, ...).
StatusOr<std::vector<int64_t>> IntList(const Node& node, const Tensor& t, const char* what);
// The single value of an int32/int64 tensor with one element (scalar or [1]).
StatusOr<int64_t> IntScalar(const Node& node, const Tensor& t, const char* what);

// Integer and bool tensors are computed through int64 (exact); floating ones through double.
inline bool IsIntLike(DType t) { return IsInteger(t) || t == DType::kBool; }
int64_t LoadInt(const Tensor& t, int64_t i);  // t must be IsIntLike
inline double LoadDouble(const Tensor& t, int64_t i) { return t.GetAsDouble(i); }
// Stores an int64, wrapping into narrower integer types as numpy's astype does (bool: nonzero); into a float
// type it is rounded once, directly from int64.
void StoreInt(Tensor& t, int64_t i, int64_t v);
// Stores a double into a floating tensor (t must be IsFloat).
inline void StoreDouble(Tensor& t, int64_t i, double v) { t.SetFromDouble(i, v); }
// Truncates toward zero into int64; false for NaN and values outside int64 (a C++ cast would be UB there).
bool DoubleToInt64(double v, int64_t* out);
// Copies one element's bytes (same dtype).
void CopyElement(Tensor& dst, int64_t dst_index, const Tensor& src, int64_t src_index);

std::vector<int64_t> RowMajorStrides(const std::vector<int64_t>& dims);
// numpy multidirectional broadcasting of all shapes; error names the mismatching dims.
StatusOr<std::vector<int64_t>> BroadcastShapes(const Node& node, const std::vector<std::vector<int64_t>>& shapes);
// Strides that read a tensor of dims `in` for each index of the broadcast shape `out` (0 on broadcast dims).
std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& in, const std::vector<int64_t>& out);

// Walks the indices of `dims` in row-major order, tracking one linear offset per operand with its own strides
// (broadcast, transposed, strided slices). Avoids a divide per element.
class IndexWalker {
 public:
  IndexWalker(std::vector<int64_t> dims, std::vector<std::vector<int64_t>> strides, std::vector<int64_t> bases = {});
  int64_t offset(size_t operand) const { return offsets_[operand]; }
  const std::vector<int64_t>& index() const { return index_; }
  void Next();

 private:
  std::vector<int64_t> dims_;
  std::vector<std::vector<int64_t>> strides_;
  std::vector<int64_t> index_;
  std::vector<int64_t> offsets_;
};

// Copies `src` into a new tensor of dims `out_dims`, reading src at walker offset(0); used by Expand,
// Transpose and Slice, which differ only in the strides and base offset.
StatusOr<Tensor> GatherByStrides(const Node& node, const Tensor& src, const std::vector<int64_t>& out_dims,
                                 const std::vector<int64_t>& src_strides, int64_t src_base);

}  // namespace dsc::const_eval
