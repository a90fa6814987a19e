// Gradient builders of the indexing ops (GatherElements, GatherND, ScatterElements, ScatterND, TopK) and
// Einsum. Index inputs never get a gradient; scatters are differentiable for reduction none/add/max/min.
#include <algorithm>

#include "ir/dsc_ops.h"
#include "ir/einsum_equation.h"
#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

// GatherElements: scatter-add dY into zeros shaped like data.
Status BuildGatherElementsGrad(B& b) {
  const int64_t axis = NormalizeAxis(b.node().GetInt("axis", 0), B::Rank(b.X(0)));
  b.SetGrad(0, b.EmitDsc(ops::kGatherElementsGrad, {b.dY(0), b.X(1)}, b.X(0)->type, {{"axis", axis}}));
  return Status::OK();
}

// TopK: Values = GatherElements(X, Indices) along the axis, so dX is dValues scattered into zeros
// at Indices (distinct within each line: no two add up). Indices take no gradient.
Status BuildTopKGrad(B& b) {
  if (!b.dY(0)) return Status::OK();
  const int64_t axis = NormalizeAxis(b.node().GetInt("axis", -1), B::Rank(b.X(0)));
  b.SetGrad(0, b.EmitDsc(ops::kGatherElementsGrad, {b.dY(0), b.Y(1)}, b.X(0)->type, {{"axis", axis}}));
  return Status::OK();
}

// GatherND: scatter-add dY's slices into zeros shaped like data.
Status BuildGatherNDGrad(B& b) {
  const int64_t batch_dims = b.node().GetInt("batch_dims", 0);
  b.SetGrad(0, b.EmitDsc(ops::kGatherNDGrad, {b.dY(0), b.X(1)}, b.X(0)->type, {{"batch_dims", batch_dims}}));
  return Status::OK();
}

// ScatterElements / ScatterND: Y = data with updates written (none), added (add) or reduced by max/min
// at the indices. none: dData = dY with the written positions zeroed, dUpdates = dY read back at
// them; add: dData = dY, dUpdates the same read. max/min: ties share dY evenly, as in
// torch.scatter_reduce's amax/amin backward: with V = Y read back at the indices, S = (data == Y),
// U = (updates == V) and N = S with U scatter-added, dData = S * dY / N, dUpdates = U * (dY / N) read
// back. mul is refused.
Status BuildScatterMaxMinGrad(B& b, const char* gather_op, const Attrs& attrs) {
  const TensorType& data_t = b.X(0)->type;
  const TensorType& upd_t = b.X(2)->type;
  auto equal = [&](Value* a, Value* c, const TensorType& t) {
    return b.Cast(b.Emit("Equal", {a, c}, B::TypeOf(DType::kBool, B::Dims(a))), t.dtype);
  };
  Value* read_back = b.Emit(gather_op, {b.Y(0), b.X(1)}, upd_t, attrs);
  Value* self_is = equal(b.X(0), b.Y(0), data_t);
  Value* update_is = equal(b.X(2), read_back, upd_t);
  Attrs add = attrs;
  add["reduction"] = std::string("add");
  Value* count = b.Emit(b.node().op_type(), {self_is, b.X(1), update_is}, data_t, add);
  Value* shared = b.Div(b.dY(0), count);  // every position counts Y itself: N >= 1
  if (b.NeedsGrad(0)) b.SetGrad(0, b.Mul(self_is, shared));
  if (b.NeedsGrad(2)) b.SetGrad(2, b.Mul(update_is, b.Emit(gather_op, {shared, b.X(1)}, upd_t, attrs)));
  return Status::OK();
}

Status BuildScatterGrad(B& b, const char* gather_op, Attrs attrs) {
  const std::string reduction = b.node().GetString("reduction", "none");
  if (reduction == "max" || reduction == "min") return BuildScatterMaxMinGrad(b, gather_op, attrs);
  if (reduction != "none" && reduction != "add")
    return b.Unsupported("the gradient of " + b.node().op_type() + " with reduction '" + reduction +
                         "' (only 'none', 'add', 'max' and 'min' are differentiable here)");
  if (b.NeedsGrad(0)) {
    if (reduction == "add") {
      b.SetGrad(0, b.dY(0));
    } else {
      Value* zeros = b.Zeros(b.X(2)->type);
      b.SetGrad(0, b.Emit(b.node().op_type(), {b.dY(0), b.X(1), zeros}, b.X(0)->type, attrs));
    }
  }
  if (b.NeedsGrad(2)) b.SetGrad(2, b.Emit(gather_op, {b.dY(0), b.X(1)}, b.X(2)->type, attrs));
  return Status::OK();
}

Status BuildScatterElementsGrad(B& b) {
  const int64_t axis = NormalizeAxis(b.node().GetInt("axis", 0), B::Rank(b.X(0)));
  return BuildScatterGrad(b, "GatherElements", {{"axis", axis}});
}

Status BuildScatterNDGrad(B& b) { return BuildScatterGrad(b, "GatherND", {}); }

// An operand's term in equation text: letters, with its ellipsis labels written as one `...`.
std::string Term(const std::vector<int>& labels, bool ellipsis) {
  std::string s;
  bool written = false;
  for (int l : labels) {
    if (l < kEllipsisLabel) {
      s += EinsumLetter(l);
    } else if (!written) {
      s += "...";
      written = true;
    }
  }
  if (ellipsis && !written) return std::string("...").append(s);  // a zero-dim `...` keeps the term's meaning
  return s;
}

// Einsum: dX_k = einsum(dY, X_j for j != k) over X_k's labels. Labels summed only within X_k are
// absent from that einsum (a size-1 dim, then Expand); ellipsis dims X_k broadcast are summed
// (ReduceSumTo). The result comes out as [ellipsis, kept letters] and is transposed into X_k's order.
Status BuildEinsumGrad(B& b) {
  const Node& n = b.node();
  std::vector<std::vector<int64_t>> shapes;
  for (size_t k = 0; k < n.num_inputs(); ++k) shapes.push_back(B::Dims(b.X(k)));
  StatusOr<EinsumEquation> parsed = ParseEinsum(n.GetString("equation", ""), shapes);
  if (!parsed.ok()) return b.Unsupported(parsed.status().message());
  const EinsumEquation& eq = *parsed;
  const std::string dy_term = Term(eq.output, eq.output_has_ellipsis);
  for (size_t k = 0; k < n.num_inputs(); ++k) {
    if (!b.NeedsGrad(k)) continue;
    const std::vector<int>& lk = eq.inputs[k];
    std::vector<int> kept, missing, ellipsis;
    for (int l : lk) {
      if (l >= kEllipsisLabel) {
        ellipsis.push_back(l);
        continue;
      }
      if (std::count(lk.begin(), lk.end(), l) > 1)
        return b.Unsupported(std::string("the gradient of Einsum operand ") + std::to_string(k) +
                             " with the repeated label '" + EinsumLetter(l) + "' (a diagonal)");
      bool elsewhere = std::count(eq.output.begin(), eq.output.end(), l) > 0;
      for (size_t j = 0; j < n.num_inputs() && !elsewhere; ++j)
        elsewhere = j != k && std::count(eq.inputs[j].begin(), eq.inputs[j].end(), l) > 0;
      (elsewhere ? kept : missing).push_back(l);
    }
    std::string equation = dy_term;
    std::vector<Value*> ins{b.dY(0)};
    for (size_t j = 0; j < n.num_inputs(); ++j) {
      if (j == k) continue;
      equation += ',';
      equation += Term(eq.inputs[j], eq.has_ellipsis[j]);
      ins.push_back(b.X(j));
    }
    std::vector<int> out_labels;
    for (int64_t i = 0; i < eq.ellipsis_rank; ++i) out_labels.push_back(kEllipsisLabel + static_cast<int>(i));
    out_labels.insert(out_labels.end(), kept.begin(), kept.end());
    equation += "->";
    equation += Term(out_labels, eq.ellipsis_rank > 0);
    std::vector<int64_t> g_dims;
    for (int l : out_labels) g_dims.push_back(eq.label_size[static_cast<size_t>(l)]);
    Value* g = b.Emit("Einsum", ins, B::TypeOf(b.X(k)->type.dtype, g_dims), {{"equation", equation}});

    // Sum the ellipsis down to X_k's own ellipsis dims, then append the labels only X_k has.
    std::vector<int64_t> own, layout_dims;
    std::vector<int> layout;
    for (size_t d = 0; d < lk.size(); ++d)
      if (lk[d] >= kEllipsisLabel) own.push_back(shapes[k][d]);
    layout_dims = own;
    layout = ellipsis;
    for (int l : kept) {
      layout.push_back(l);
      layout_dims.push_back(eq.label_size[static_cast<size_t>(l)]);
    }
    g = b.ReduceSumTo(g, layout_dims);
    for (int l : missing) {
      layout.push_back(l);
      layout_dims.push_back(1);
    }
    g = b.Reshape(g, layout_dims);
    std::vector<int64_t> perm;
    for (int l : lk)
      perm.push_back(static_cast<int64_t>(std::find(layout.begin(), layout.end(), l) - layout.begin()));
    bool identity = true;
    for (size_t d = 0; d < perm.size(); ++d) identity = identity && perm[d] == static_cast<int64_t>(d);
    if (!identity) g = b.Transpose(g, perm);
    b.SetGrad(k, b.Expand(g, shapes[k]));
  }
  return Status::OK();
}

}  // namespace

void RegisterIndexingGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("GatherElements", BuildGatherElementsGrad);
  REGISTER_GRADIENT_BUILDER("TopK", BuildTopKGrad);
  REGISTER_GRADIENT_BUILDER("GatherND", BuildGatherNDGrad);
  REGISTER_GRADIENT_BUILDER("ScatterElements", BuildScatterElementsGrad);
  REGISTER_GRADIENT_BUILDER("ScatterND", BuildScatterNDGrad);
  REGISTER_GRADIENT_BUILDER("Einsum", BuildEinsumGrad);
}

}  // namespace dsc::autodiff
