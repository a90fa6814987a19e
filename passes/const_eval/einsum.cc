// Einsum on constants (rotary tables written as einsum("i,j->ij", positions, inv_freq)): numpy's
// rules through ir/einsum_equation.h, floats summed in double, integers exactly in int64 (wrapping).
#include <algorithm>

#include "ir/einsum_equation.h"
#include "passes/const_eval/internal.h"

namespace dsc::const_eval {
namespace {

StatusOr<Outputs> EvalEinsum(const Node& node, const Inputs& in) {
  if (in.empty()) return Bad(node, "Einsum needs at least one input");
  std::vector<std::vector<int64_t>> shapes;
  for (size_t k = 0; k < in.size(); ++k) {
    if (!in[k]) return Bad(node, "input ", k, " is missing");
    if (in[k]->dtype() != in[0]->dtype()) return Bad(node, "inputs differ in type");
    shapes.push_back(in[k]->dims());
  }
  const DType dtype = in[0]->dtype();
  if (dtype == DType::kBool) return Bad(node, "Einsum takes numeric tensors, not bool");
  StatusOr<EinsumEquation> parsed = ParseEinsum(node.GetString("equation", ""), shapes);
  if (!parsed.ok()) return Bad(node, parsed.status().message());
  const EinsumEquation& eq = *parsed;
  std::vector<int64_t> out_dims;
  for (int l : eq.output) out_dims.push_back(eq.label_size[static_cast<size_t>(l)]);
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, dtype, out_dims));

  // Walk every assignment of the used labels; each adds the product of its elements into the
  // output element it selects. Strides are summed over repeated labels (a diagonal) and are 0 on
  // broadcast ellipsis dims.
  std::vector<int> labels;
  for (size_t l = 0; l < eq.label_count.size(); ++l)
    if (eq.label_count[l] > 0) labels.push_back(static_cast<int>(l));
  std::vector<std::vector<int64_t>> strides(in.size() + 1, std::vector<int64_t>(labels.size(), 0));
  auto pos = [&](int l) { return static_cast<size_t>(std::find(labels.begin(), labels.end(), l) - labels.begin()); };
  for (size_t k = 0; k < in.size(); ++k) {
    const std::vector<int64_t> rs = RowMajorStrides(shapes[k]);
    for (size_t d = 0; d < shapes[k].size(); ++d) {
      const int l = eq.inputs[k][d];
      if (shapes[k][d] == 1 && eq.label_size[static_cast<size_t>(l)] != 1) continue;
      strides[k][pos(l)] += rs[d];
    }
  }
  const std::vector<int64_t> os = RowMajorStrides(out_dims);
  for (size_t d = 0; d < eq.output.size(); ++d) strides[in.size()][pos(eq.output[d])] = os[d];
  std::vector<int64_t> dims;
  for (int l : labels) dims.push_back(eq.label_size[static_cast<size_t>(l)]);
  int64_t total = 1;
  for (int64_t d : dims) {
    if (d != 0 && total > kMaxConstEvalElements / d)
      return OutOfRange(node.Describe(), ": Einsum needs more than ", kMaxConstEvalElements, " products");
    total *= d;
  }
  if (total == 0) return Outputs{std::move(out)};
  const bool ints = IsIntLike(dtype);
  std::vector<double> acc_f(ints ? 0 : static_cast<size_t>(out.numel()), 0.0);
  std::vector<uint64_t> acc_i(ints ? static_cast<size_t>(out.numel()) : 0, 0);
  IndexWalker walk(dims, strides);
  for (int64_t t = 0; t < total; ++t, walk.Next()) {
    const size_t o = static_cast<size_t>(walk.offset(in.size()));
    if (ints) {
      uint64_t p = 1;
      for (size_t k = 0; k < in.size(); ++k) p *= static_cast<uint64_t>(LoadInt(*in[k], walk.offset(k)));
      acc_i[o] += p;
    } else {
      double p = 1;
      for (size_t k = 0; k < in.size(); ++k) p *= LoadDouble(*in[k], walk.offset(k));
      acc_f[o] += p;
    }
  }
  for (int64_t i = 0; i < out.numel(); ++i) {
    if (ints) StoreInt(out, i, static_cast<int64_t>(acc_i[static_cast<size_t>(i)]));
    else StoreDouble(out, i, acc_f[static_cast<size_t>(i)]);
  }
  return Outputs{std::move(out)};
}

}  // namespace

void RegisterEinsumOps(OpTable& t) { t["Einsum"] = EvalEinsum; }

}  // namespace dsc::const_eval
