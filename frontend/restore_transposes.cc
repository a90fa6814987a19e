// Restoring parameters whose Transpose onnxscript's optimizer folded (aten.linear, aten.index, a
// matrix's .T in the model).

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "frontend/parameter_restorer.h"
#include "ir/dtype.h"

namespace dsc {
namespace {

// The permutation torchlib applies to parameter `placeholder` before `use` reads it, when the
// read is one of the aten calls whose Transpose the optimizer folds: aten.linear's weight (MatMul
// input 1, perm [1, 0]) and aten.index.Tensor's table (GatherND input 0: the indexed axes first,
// then the others in order). Empty otherwise.
std::vector<int64_t> FoldedPermutation(const ParameterRestorer::Use& use, const std::string& placeholder, int64_t rank) {
  const onnx::NodeProto& n = *use.node;
  const std::string* fx = ParameterRestorer::Fx(n);
  if (!fx || !(n.domain().empty() || n.domain() == "ai.onnx")) return {};
  if (n.op_type() == "MatMul" && use.input == 1 && rank == 2) {
    const std::vector<std::string> args = FxCallArgs(*fx, "aten.linear.default");
    if (args.size() >= 2 && args[1] == "%" + placeholder) return {1, 0};
    return {};
  }
  if (n.op_type() == "GatherND" && use.input == 0) {
    const std::string head = "[target=torch.ops.aten.index.Tensor](args = (%" + placeholder + ", [";
    const size_t at = fx->find(head);
    if (at == std::string::npos) return {};
    const size_t begin = at + head.size(), end = fx->find(']', begin);
    if (end == std::string::npos) return {};
    std::vector<bool> indexed;
    for (size_t s = begin; s <= end;) {
      size_t c = std::min(fx->find(',', s), end);
      std::string item = fx->substr(s, c - s);
      item.erase(0, item.find_first_not_of(' '));
      if (item.empty()) return {};
      indexed.push_back(item != "None");
      s = c + 1;
    }
    if (static_cast<int64_t>(indexed.size()) > rank) return {};
    std::vector<int64_t> perm;
    for (size_t i = 0; i < indexed.size(); ++i)
      if (indexed[i]) perm.push_back(static_cast<int64_t>(i));
    for (size_t i = 0; i < indexed.size(); ++i)
      if (!indexed[i]) perm.push_back(static_cast<int64_t>(i));
    for (int64_t i = static_cast<int64_t>(indexed.size()); i < rank; ++i) perm.push_back(i);
    return perm;
  }
  return {};
}

// w with w.dims()[perm[i]] == f.dims()[i]: the tensor whose Transpose(perm) is f.
Tensor Untransposed(const Tensor& f, const std::vector<int64_t>& perm) {
  const int64_t rank = f.rank();
  std::vector<int64_t> dims(rank);
  for (int64_t i = 0; i < rank; ++i) dims[perm[i]] = f.dims()[i];
  Tensor w(f.dtype(), dims);
  std::vector<int64_t> w_strides(rank, 1);
  for (int64_t i = rank - 2; i >= 0; --i) w_strides[i] = w_strides[i + 1] * dims[i + 1];
  const size_t e = DTypeSize(f.dtype());
  const uint8_t* src = f.raw();
  uint8_t* dst = w.raw();
  std::vector<int64_t> at(rank, 0);  // f's index, walked in f's row-major order
  for (int64_t k = 0; k < f.numel(); ++k) {
    int64_t offset = 0;
    for (int64_t i = 0; i < rank; ++i) offset += at[i] * w_strides[perm[i]];
    std::memcpy(dst + offset * e, src + k * e, e);
    for (int64_t i = rank - 1; i >= 0 && ++at[i] == f.dims()[i]; --i) at[i] = 0;
  }
  return w;
}

}  // namespace

// Transpose(W) folded into an initializer F (folded_from [W] alone) whose every read is one of
// FoldedPermutation's with one permutation (the optimizer's CSE merges the Transposes of a weight
// several layers share, as ALBERT's do).
Status ParameterRestorer::RestoreFoldedTransposes() {
  std::vector<std::string> done;
  for (const auto& [folded, sources] : folded_from_) {
    if (sources.size() != 1) continue;
    auto p = by_target_.find(sources[0]);
    if (p == by_target_.end() || signature_.at(p->second).kind != "PARAMETER") continue;
    const std::string& target = sources[0];
    // W itself may still be in the file (a tied weight that is also an embedding table): then
    // the folded copy must hold exactly W transposed, and the Transpose reads W.
    const std::string* kept = nullptr;
    for (const auto& [init, placeholder] : placeholder_of_)
      if (placeholder == p->second) kept = &init;
    if (!kept && (!missing_.count(p->second) || names_.count(target))) continue;
    auto u = uses_.find(folded);
    auto dims = initializer_dims_.find(folded);
    if (u == uses_.end() || read_in_subgraph_.count(folded) || dims == initializer_dims_.end()) continue;
    const int64_t rank = static_cast<int64_t>(dims->second.size());
    std::vector<int64_t> perm = FoldedPermutation(u->second[0], p->second, rank);
    for (const Use& use : u->second)
      if (FoldedPermutation(use, p->second, rank) != perm) perm.clear();
    // The model's own transpose of a matrix (Falcon's `input @ self.weight.T`): the fold is named
    // after its call, and a 2-D transpose has one permutation whatever reads it.
    const std::string op = FxOpOfName(folded);
    if (perm.empty() && rank == 2 && (op == "t" || op == "permute" || op == "transpose" || op == "numpy_T"))
      perm = {1, 0};
    if (perm.empty()) continue;
    onnx::TensorProto* t = FindInitializer(folded);
    if (!t) continue;
    ASSIGN_OR_RETURN(Tensor f, InitializerData(*t, *held_));
    Tensor w = Untransposed(f, perm);
    if (kept) {
      onnx::TensorProto* k = FindInitializer(*kept);
      if (!k) continue;
      ASSIGN_OR_RETURN(Tensor have, InitializerData(*k, *held_));
      if (!have.SameContents(w)) continue;
    } else {
      AddValueInfo(target, w, p->second);
      AddHeldInitializer(g_, target, std::move(w), held_);
      placeholder_of_[target] = p->second;  // a second folded copy reads it too
    }
    onnx::NodeProto transpose;
    transpose.set_op_type("Transpose");
    transpose.set_name(StrCat(folded, "_restored_transpose"));
    transpose.add_input(kept ? *kept : target);
    transpose.add_output(folded);
    auto* attr = transpose.add_attribute();
    attr->set_name("perm");
    attr->set_type(onnx::AttributeProto::INTS);
    for (int64_t d : perm) attr->add_ints(d);
    auto* fx = transpose.add_metadata_props();
    fx->set_key(kFxNodeKey);
    fx->set_value(*Fx(*u->second[0].node));
    prepend_.push_back(std::move(transpose));
    done.push_back(folded);
  }
  DropFolded(done);  // their folded_from_ entries stay: the Transposes' outputs still claim W
  return Status::OK();
}

}  // namespace dsc
