// Shape and layout ops: Shape, Size, Reshape, Squeeze, Unsqueeze, Flatten, Identity, Transpose, Expand, Tile,
// Concat, Split. Data moves as raw element bytes, so every dtype is copied exactly.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

#include "passes/const_eval/internal.h"

namespace dsc::const_eval {
namespace {

int64_t Product(const std::vector<int64_t>& dims, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i) n *= dims[i];
  return n;
}

// Same data under new dims: Reshape, Squeeze, Unsqueeze, Flatten and Identity share the input's buffer.
StatusOr<Outputs> SameData(const Node& node, const Tensor& x, std::vector<int64_t> dims) {
  RETURN_IF_ERROR(CheckOutputSize(node, dims));
  return Outputs{x.Reshaped(std::move(dims))};
}

// Axes from input `index` (opset 13+) or, for older models, from the "axes" attribute; nullopt when neither.
StatusOr<std::optional<std::vector<int64_t>>> AxesInputOrAttr(const Node& node, const Inputs& in, size_t index) {
  if (const Tensor* t = OptionalInput(in, index)) {
    ASSIGN_OR_RETURN(std::vector<int64_t> axes, IntList(node, *t, "axes"));
    return std::optional<std::vector<int64_t>>(std::move(axes));
  }
  if (node.HasAttr("axes")) return std::optional<std::vector<int64_t>>(node.GetInts("axes"));
  return std::optional<std::vector<int64_t>>();
}

// Shape (opset 15): start/end select a slice of the dims, clamped like Python slicing.
StatusOr<Outputs> EvalShape(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  int64_t rank = in[0]->rank();
  auto clamp = [rank](int64_t v) {
    if (v < 0) v += rank;
    return std::clamp<int64_t>(v, 0, rank);
  };
  int64_t start = clamp(node.GetInt("start", 0));
  int64_t end = clamp(node.GetInt("end", rank));
  int64_t n = std::max<int64_t>(end - start, 0);
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, DType::kInt64, {n}));
  for (int64_t i = 0; i < n; ++i) StoreInt(out, i, in[0]->dims()[static_cast<size_t>(start + i)]);
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalSize(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, DType::kInt64, {}));
  StoreInt(out, 0, in[0]->numel());
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalIdentity(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  return SameData(node, *in[0], in[0]->dims());
}

// Reshape: 0 copies the input dim (unless allowzero=1, where it means an empty dim); one -1 is inferred.
StatusOr<Outputs> EvalReshape(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  const Tensor& x = *in[0];
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, IntList(node, *in[1], "shape"));
  bool allowzero = node.GetInt("allowzero", 0) != 0;
  int64_t infer = -1;
  bool has_zero = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t d = shape[i];
    if (d == 0) {
      has_zero = true;
      if (!allowzero) {
        if (static_cast<int64_t>(i) >= x.rank())
          return Bad(node, "shape[", i, "] is 0 but the input has rank ", x.rank());
        shape[i] = x.dims()[i];
      }
    } else if (d == -1) {
      if (infer >= 0) return Bad(node, "shape has more than one -1");
      infer = static_cast<int64_t>(i);
    } else if (d < -1) {
      return Bad(node, "shape[", i, "] is ", d);
    }
  }
  if (allowzero && has_zero && infer >= 0) return Bad(node, "allowzero=1 forbids a shape with both 0 and -1");
  if (infer >= 0) {
    int64_t known = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (static_cast<int64_t>(i) == infer) continue;
      if (shape[i] != 0 && known > std::numeric_limits<int64_t>::max() / shape[i])
        return Bad(node, "shape element count overflows int64");
      known *= shape[i];
    }
    if (known == 0 || x.numel() % known != 0)
      return Bad(node, "cannot reshape ", x.numel(), " elements with -1 in shape (other dims multiply to ", known,
                 ")");
    shape[static_cast<size_t>(infer)] = x.numel() / known;
  }
  StatusOr<int64_t> count = NumElements(shape);
  if (!count.ok() || *count != x.numel())
    return Bad(node, "cannot reshape ", x.numel(), " elements into the requested shape");
  return SameData(node, x, std::move(shape));
}

StatusOr<Outputs> EvalSqueeze(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 2));
  const Tensor& x = *in[0];
  ASSIGN_OR_RETURN(auto axes, AxesInputOrAttr(node, in, 1));
  std::set<int64_t> drop;
  if (axes) {
    ASSIGN_OR_RETURN(std::vector<int64_t> norm, NormalizeAxes(node, *axes, x.rank()));
    for (int64_t a : norm) {
      if (x.dims()[static_cast<size_t>(a)] != 1)
        return Bad(node, "cannot squeeze axis ", a, " of size ", x.dims()[static_cast<size_t>(a)]);
      drop.insert(a);
    }
  } else {
    for (int64_t a = 0; a < x.rank(); ++a)
      if (x.dims()[static_cast<size_t>(a)] == 1) drop.insert(a);
  }
  std::vector<int64_t> dims;
  for (int64_t a = 0; a < x.rank(); ++a)
    if (!drop.count(a)) dims.push_back(x.dims()[static_cast<size_t>(a)]);
  return SameData(node, x, std::move(dims));
}

// Unsqueeze: axes index the output, whose rank is the input's plus the number of axes.
StatusOr<Outputs> EvalUnsqueeze(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 2));
  const Tensor& x = *in[0];
  ASSIGN_OR_RETURN(auto axes, AxesInputOrAttr(node, in, 1));
  if (!axes) return Bad(node, "axes are required");
  int64_t out_rank = x.rank() + static_cast<int64_t>(axes->size());
  ASSIGN_OR_RETURN(std::vector<int64_t> norm, NormalizeAxes(node, *axes, out_rank));
  std::set<int64_t> ones(norm.begin(), norm.end());
  std::vector<int64_t> dims;
  size_t next = 0;
  for (int64_t a = 0; a < out_rank; ++a) dims.push_back(ones.count(a) ? 1 : x.dims()[next++]);
  return SameData(node, x, std::move(dims));
}

StatusOr<Outputs> EvalFlatten(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  const Tensor& x = *in[0];
  int64_t axis = node.GetInt("axis", 1);
  if (axis < -x.rank() || axis > x.rank()) return Bad(node, "axis ", axis, " is out of range for rank ", x.rank());
  if (axis < 0) axis += x.rank();
  size_t a = static_cast<size_t>(axis);
  return SameData(node, x, {Product(x.dims(), 0, a), Product(x.dims(), a, x.dims().size())});
}

StatusOr<Outputs> EvalTranspose(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  const Tensor& x = *in[0];
  std::vector<int64_t> perm(static_cast<size_t>(x.rank()));
  std::iota(perm.rbegin(), perm.rend(), 0);  // default: reverse the dims
  if (node.HasAttr("perm")) perm = node.GetInts("perm");
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(static_cast<size_t>(x.rank()));
  std::iota(identity.begin(), identity.end(), 0);
  if (sorted != identity) return Bad(node, "perm is not a permutation of the ", x.rank(), " input axes");
  std::vector<int64_t> dense = RowMajorStrides(x.dims());
  std::vector<int64_t> dims, strides;
  for (int64_t p : perm) {
    dims.push_back(x.dims()[static_cast<size_t>(p)]);
    strides.push_back(dense[static_cast<size_t>(p)]);
  }
  ASSIGN_OR_RETURN(Tensor out, GatherByStrides(node, x, dims, strides, 0));
  return Outputs{std::move(out)};
}

// Expand broadcasts both ways: a shape dim of 1 keeps the input's dim.
StatusOr<Outputs> EvalExpand(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  const Tensor& x = *in[0];
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, IntList(node, *in[1], "shape"));
  for (int64_t d : shape)
    if (d < 0) return Bad(node, "shape has negative dimension ", d);
  ASSIGN_OR_RETURN(std::vector<int64_t> dims, BroadcastShapes(node, {x.dims(), shape}));
  ASSIGN_OR_RETURN(Tensor out, GatherByStrides(node, x, dims, BroadcastStrides(x.dims(), dims), 0));
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalTile(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  const Tensor& x = *in[0];
  ASSIGN_OR_RETURN(std::vector<int64_t> repeats, IntList(node, *in[1], "repeats"));
  if (static_cast<int64_t>(repeats.size()) != x.rank())
    return Bad(node, "repeats has ", repeats.size(), " values for an input of rank ", x.rank());
  std::vector<int64_t> dims;
  for (size_t i = 0; i < repeats.size(); ++i) {
    int64_t d = x.dims()[i], r = repeats[i];
    if (r < 0) return Bad(node, "repeats[", i, "] is negative (", r, ")");
    if (d != 0 && r > std::numeric_limits<int64_t>::max() / d)
      return OutOfRange(node.Describe(), ": output dimension overflows int64");
    dims.push_back(d * r);
  }
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, x.dtype(), dims));
  std::vector<int64_t> dense = RowMajorStrides(x.dims());
  IndexWalker walk(dims, {});
  for (int64_t i = 0; i < out.numel(); ++i, walk.Next()) {
    int64_t src = 0;
    for (size_t d = 0; d < dims.size(); ++d) src += (walk.index()[d] % x.dims()[d]) * dense[d];
    CopyElement(out, i, x, src);
  }
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalConcat(const Node& node, const Inputs& in) {
  if (in.empty()) return Bad(node, "needs at least one input");
  if (!node.HasAttr("axis")) return Bad(node, "attribute 'axis' is required");
  for (size_t k = 0; k < in.size(); ++k)
    if (in[k] == nullptr) return Bad(node, "input ", k, " is required but missing");
  const Tensor& first = *in[0];
  if (first.rank() == 0) return Bad(node, "cannot concatenate scalars");
  ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node, node.GetInt("axis", 0), first.rank()));
  size_t a = static_cast<size_t>(axis);
  std::vector<int64_t> dims = first.dims();
  dims[a] = 0;
  for (size_t k = 0; k < in.size(); ++k) {
    const Tensor& t = *in[k];
    if (t.dtype() != first.dtype())
      return Bad(node, "input ", k, " has element type ", DTypeName(t.dtype()), " but input 0 has ",
                 DTypeName(first.dtype()));
    if (t.rank() != first.rank()) return Bad(node, "input ", k, " has rank ", t.rank(), ", input 0 ", first.rank());
    for (size_t d = 0; d < dims.size(); ++d)
      if (d != a && t.dims()[d] != first.dims()[d])
        return Bad(node, "input ", k, " has dimension ", t.dims()[d], " at axis ", d, ", input 0 has ",
                   first.dims()[d]);
    if (dims[a] > std::numeric_limits<int64_t>::max() - t.dims()[a])
      return OutOfRange(node.Describe(), ": output dimension overflows int64");
    dims[a] += t.dims()[a];
  }
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, first.dtype(), dims));
  // Each input contributes one contiguous block per index of the dims before the axis.
  size_t elem = DTypeSize(first.dtype());
  int64_t outer = Product(dims, 0, a);
  size_t out_row = static_cast<size_t>(Product(dims, a, dims.size())) * elem;
  size_t offset = 0;
  for (const Tensor* t : in) {
    size_t row = static_cast<size_t>(Product(t->dims(), a, dims.size())) * elem;
    for (int64_t o = 0; o < outer && row > 0; ++o)
      std::memcpy(out.raw() + static_cast<size_t>(o) * out_row + offset, t->raw() + static_cast<size_t>(o) * row, row);
    offset += row;
  }
  return Outputs{std::move(out)};
}

// Split: sizes from input 1 (opset 13+) or the "split" attribute; otherwise equal parts, one per output
// (with opset 18's num_outputs the last part may be smaller).
StatusOr<Outputs> EvalSplit(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 2));
  const Tensor& x = *in[0];
  if (x.rank() == 0) return Bad(node, "cannot split a scalar");
  ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node, node.GetInt("axis", 0), x.rank()));
  size_t a = static_cast<size_t>(axis);
  int64_t dim = x.dims()[a];
  int64_t n = static_cast<int64_t>(node.num_outputs());
  std::vector<int64_t> sizes;
  if (const Tensor* s = OptionalInput(in, 1)) {
    ASSIGN_OR_RETURN(sizes, IntList(node, *s, "split"));
  } else if (node.HasAttr("split")) {
    sizes = node.GetInts("split");
  } else if (node.HasAttr("num_outputs")) {
    int64_t parts = node.GetInt("num_outputs", 0);
    if (parts <= 0 || parts != n) return Bad(node, "num_outputs is ", parts, " but the node has ", n, " outputs");
    int64_t chunk = (dim + n - 1) / n;
    for (int64_t i = 0, left = dim; i < n; ++i, left -= std::min(chunk, left)) sizes.push_back(std::min(chunk, left));
  } else {
    if (n == 0 || dim % n != 0) return Bad(node, "cannot split dimension ", dim, " into ", n, " equal parts");
    sizes.assign(static_cast<size_t>(n), dim / n);
  }
  if (static_cast<int64_t>(sizes.size()) != n)
    return Bad(node, "split has ", sizes.size(), " sizes but the node has ", n, " outputs");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0 || s > dim - total)
      return Bad(node, "split sizes ", s, " (after ", total, ") do not fit dimension ", axis, " of size ", dim);
    total += s;
  }
  if (total != dim) return Bad(node, "split sizes add up to ", total, " but dimension ", axis, " is ", dim);
  size_t elem = DTypeSize(x.dtype());
  int64_t outer = Product(x.dims(), 0, a);
  size_t inner = static_cast<size_t>(Product(x.dims(), a + 1, x.dims().size())) * elem;
  size_t in_row = static_cast<size_t>(dim) * inner;
  Outputs outs;
  size_t offset = 0;
  for (int64_t s : sizes) {
    std::vector<int64_t> dims = x.dims();
    dims[a] = s;
    ASSIGN_OR_RETURN(Tensor out, NewTensor(node, x.dtype(), dims));
    size_t row = static_cast<size_t>(s) * inner;
    for (int64_t o = 0; o < outer && row > 0; ++o)
      std::memcpy(out.raw() + static_cast<size_t>(o) * row, x.raw() + static_cast<size_t>(o) * in_row + offset, row);
    offset += row;
    outs.push_back(std::move(out));
  }
  return outs;
}

}  // namespace

void RegisterShapeOps(OpTable& t) {
  t["Shape"] = EvalShape;
  t["Size"] = EvalSize;
  t["Identity"] = EvalIdentity;
  t["Reshape"] = EvalReshape;
  t["Squeeze"] = EvalSqueeze;
  t["Unsqueeze"] = EvalUnsqueeze;
  t["Flatten"] = EvalFlatten;
  t["Transpose"] = EvalTranspose;
  t["Expand"] = EvalExpand;
  t["Tile"] = EvalTile;
  t["Concat"] = EvalConcat;
  t["Split"] = EvalSplit;
}

}  // namespace dsc::const_eval
