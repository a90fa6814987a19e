// Restoring parameters folded into a value computed from them alone: lookups, views, exp/neg chains.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "frontend/parameter_restorer.h"
#include "ir/dtype.h"

namespace dsc {
namespace {

// Whether the aten call named `fx_name` ("view_3") returns its input's elements in their order.
bool KeepsElementOrder(const std::string& fx_name) {
  static const std::set<std::string> ops = {"view", "reshape", "_unsafe_view", "unsqueeze", "squeeze",
                                            "flatten", "alias", "clone", "contiguous", "lift_fresh_copy"};
  const size_t end = fx_name.find_last_not_of("0123456789");
  std::string op = fx_name.substr(0, end == std::string::npos ? 0 : end + 1);
  if (op.size() > 1 && op.back() == '_' && end + 1 < fx_name.size()) op.pop_back();
  return ops.count(op) > 0;
}

// torchlib's constants are named val_N.
bool IsTorchlibConstant(const std::string& name) {
  return name.size() > 4 && name.rfind("val_", 0) == 0 && name.find_first_not_of("0123456789", 4) == std::string::npos;
}

// The aten op an fx node name stands for: "exp_3" -> "exp".
std::string FxOp(const std::string& fx_name) {
  const size_t end = fx_name.find_last_not_of("0123456789");
  if (end == std::string::npos) return "";
  if (end + 1 < fx_name.size() && fx_name[end] == '_') return fx_name.substr(0, end);
  return fx_name;
}

}  // namespace

// nn.Embedding looked up with constant indices (position_ids from arange or a buffer, a zero
// token_type_ids buffer) folds into initializer "embedding[_N]" (the aten.embedding node's name)
// holding the rows it read, marked folded_from [..., W, ...] with W the only parameter. It becomes
// Gather(W', rows) where W' holds each distinct row once: gradients of repeated rows add up, as
// in PyTorch's lookup. W' has only the rows the file kept, so it is not PyTorch's full table.
Status ParameterRestorer::RestoreFoldedLookups() {
  std::vector<std::string> done;
  for (const auto& [folded, sources] : folded_from_) {
    const std::string suffix = folded.substr(std::min<size_t>(folded.size(), 9));
    if (folded.rfind("embedding", 0) != 0 ||
        !(suffix.empty() || (suffix.size() > 1 && suffix[0] == '_' &&
                             suffix.find_first_not_of("0123456789", 1) == std::string::npos)))
      continue;
    std::vector<std::string> params;
    for (const std::string& src : sources)
      if (auto p = by_target_.find(src); p != by_target_.end() && signature_.at(p->second).kind == "PARAMETER")
        params.push_back(p->second);
    if (params.size() != 1 || !missing_.count(params[0]) || read_in_subgraph_.count(folded)) continue;
    const std::string& target = signature_.at(params[0]).target;
    const std::string rows_name = StrCat(folded, "_rows");
    if (names_.count(target) || names_.count(rows_name)) continue;
    onnx::TensorProto* t = FindInitializer(folded);
    if (!t || t->dims_size() < 2) continue;
    ASSIGN_OR_RETURN(Tensor f, InitializerData(*t, *held_));
    const int64_t width = f.dims().back();
    if (width <= 0 || f.numel() == 0) continue;
    const int64_t n = f.numel() / width;
    const size_t row_bytes = static_cast<size_t>(width) * DTypeSize(f.dtype());
    const uint8_t* src = f.raw();
    std::map<std::string, int64_t> first;  // row bytes -> its row in W'
    std::vector<int64_t> index(n);
    std::vector<int64_t> kept;
    for (int64_t r = 0; r < n; ++r) {
      auto [it, fresh] = first.try_emplace(std::string(reinterpret_cast<const char*>(src) + r * row_bytes, row_bytes),
                                           static_cast<int64_t>(kept.size()));
      if (fresh) kept.push_back(r);
      index[r] = it->second;
    }
    Tensor w(f.dtype(), {static_cast<int64_t>(kept.size()), width});
    for (size_t k = 0; k < kept.size(); ++k) std::memcpy(w.raw() + k * row_bytes, src + kept[k] * row_bytes, row_bytes);
    std::vector<int64_t> index_dims(f.dims().begin(), f.dims().end() - 1);
    Tensor rows = Tensor::FromVector(DType::kInt64, index_dims, index);
    if (static_cast<int64_t>(kept.size()) < n)
      AddImportWarning(model_, StrCat("the exporter's optimizer folded a lookup of '", target, "' into '", folded,
                                      "' (", n, " rows, ", kept.size(), " distinct); each distinct row trains as one "
                                      "row of the table, which is PyTorch's training unless the table had equal "
                                      "rows at export; re-export with optimize=False to keep the lookup"));
    AddValueInfo(target, w, params[0]);
    AddHeldInitializer(g_, target, std::move(w), held_);
    AddHeldInitializer(g_, rows_name, std::move(rows), held_);
    names_.insert(rows_name);
    onnx::NodeProto gather;
    gather.set_op_type("Gather");
    gather.set_name(StrCat(folded, "_lookup"));
    gather.add_input(target);
    gather.add_input(rows_name);
    gather.add_output(folded);
    prepend_.push_back(std::move(gather));
    done.push_back(folded);
  }
  DropFolded(done);
  return Status::OK();
}

// A parameter reshaped in the model (ConvNeXt's layer scale gamma.view(1, -1, 1, 1), a conv
// weight unsqueezed) folds into an initializer named after the last aten call of the chain,
// "view_3", whose folded_from names the parameter, torchlib's constants (val_N) and the chain's
// earlier calls. When every call in the chain keeps the element order, the folded tensor holds
// the parameter's elements in order: it trains as the parameter (an elementwise optimizer cannot
// tell the shapes apart) and takes its name, keeping the shape the model used.
Status ParameterRestorer::RestoreFoldedViews() {
  std::vector<std::pair<std::string, std::string>> renames;  // folded -> parameter name
  for (const auto& [folded, sources] : folded_from_) {
    if (read_in_subgraph_.count(folded) || !initializers_.count(folded)) continue;
    if (!KeepsElementOrder(folded) && !ReadAsGroupNormAffine(folded)) continue;
    std::vector<std::string> params;
    bool order_kept = true;
    for (const std::string& src : sources) {
      if (auto p = by_target_.find(src); p != by_target_.end()) params.push_back(p->second);
      else order_kept &= IsTorchlibConstant(src) || KeepsElementOrder(src);
    }
    if (!order_kept || params.size() != 1 || !missing_.count(params[0]) ||
        signature_.at(params[0]).kind != "PARAMETER")
      continue;
    const std::string& target = signature_.at(params[0]).target;
    if (names_.count(target)) continue;
    onnx::TensorProto* t = FindInitializer(folded);
    if (!t) continue;
    ASSIGN_OR_RETURN(Tensor f, InitializerData(*t, *held_));
    AddValueInfo(target, f, params[0]);
    AddHeldInitializer(g_, target, std::move(f), held_);
    placeholder_of_[target] = params[0];
    aliases_[target].insert(folded);  // aten calls read it by the folded call's name
    renames.push_back({folded, target});
  }
  for (const auto& [folded, target] : renames) {
    for (const Use& u : uses_[folded]) u.node->set_input(u.input, target);
    RemoveInitializer(folded);
    auto* infos = g_->mutable_value_info();
    for (int i = infos->size() - 1; i >= 0; --i)
      if (infos->Get(i).name() == folded) infos->DeleteSubrange(i, 1);
    uses_.erase(folded);
    folded_from_.erase(folded);
  }
  return Status::OK();
}

// torchlib's group_norm unsqueezes its weight and bias to [C, 1, ...] before the Mul and Add
// that apply them; folded, the tensor is named val_N and keeps the parameter's element order. In a
// half model the Mul and Add read it through a CastLike to the normalised input's type.
bool ParameterRestorer::ReadAsGroupNormAffine(const std::string& folded) {
  auto u = uses_.find(folded);
  if (u == uses_.end()) return false;
  for (const Use& use : u->second) {
    const std::string* fx = Fx(*use.node);
    const std::string& op = use.node->op_type();
    const bool cast = (op == "CastLike" || op == "Cast") && use.input == 0;
    if (!fx || !IsGroupNorm(*fx) || (op != "Mul" && op != "Add" && !cast) || IsRewritten(*use.node)) return false;
  }
  return true;
}

// logit_scale.exp() (CLIP, SigLIP), -torch.exp(A_log) (Mamba and its hybrids, then unsqueezed),
// RWKV's -exp(time_decay): a parameter through exp and/or neg, and calls that keep the element
// order, folds into an initializer named after the last call ("neg", folded_from [A_log, exp]).
// With both ops, the values' sign tells their order (exp's results are positive). Both invert, so
// the parameter comes back as the inverse of the folded values in the folded shape (log rounds:
// within an ulp of PyTorch's), and the ops are applied to it again.
Status ParameterRestorer::RestoreFoldedUnaryChains() {
  std::vector<std::string> done;
  for (const auto& [folded, sources] : folded_from_) {
    if (read_in_subgraph_.count(folded) || !initializers_.count(folded)) continue;
    std::vector<std::string> params, chain = {folded};
    for (const std::string& src : sources) {
      if (auto p = by_target_.find(src); p != by_target_.end()) params.push_back(p->second);
      else chain.push_back(src);
    }
    if (params.size() != 1 || !missing_.count(params[0]) || signature_.at(params[0]).kind != "PARAMETER") continue;
    bool known = true;
    int exps = 0, negs = 0;
    for (const std::string& c : chain) {
      const std::string op = FxOp(c);
      if (op == "exp") ++exps;
      else if (op == "neg") ++negs;
      else known &= KeepsElementOrder(c) || IsTorchlibConstant(c);
    }
    const bool has_exp = exps == 1, has_neg = negs == 1;
    const std::string& target = signature_.at(params[0]).target;
    if (!known || exps > 1 || negs > 1 || !(has_exp || has_neg) || names_.count(target)) continue;
    onnx::TensorProto* t = FindInitializer(folded);
    if (!t) continue;
    ASSIGN_OR_RETURN(Tensor f, InitializerData(*t, *held_));
    if (f.dtype() != DType::kFloat32 && f.dtype() != DType::kFloat64) continue;
    std::vector<std::string> ops;  // in the order the model applies them
    if (has_exp && has_neg) {
      bool negative = true, positive = true;
      for (int64_t i = 0; i < f.numel(); ++i) {
        negative &= f.GetAsDouble(i) < 0;
        positive &= f.GetAsDouble(i) > 0;
      }
      if (negative) ops = {"exp", "neg"};
      else if (positive) ops = {"neg", "exp"};
      else continue;
    } else {
      ops = {has_exp ? "exp" : "neg"};
    }
    Tensor w(f.dtype(), f.dims());
    bool ok = true;
    for (int64_t i = 0; i < f.numel(); ++i) {
      double v = f.GetAsDouble(i);
      for (auto op = ops.rbegin(); op != ops.rend(); ++op) {
        if (*op == "neg") v = -v;
        else if (v > 0) v = std::log(v);
        else ok = false;
      }
      w.SetFromDouble(i, v);
    }
    if (!ok) continue;
    AddValueInfo(target, w, params[0]);
    AddHeldInitializer(g_, target, std::move(w), held_);
    std::string in = target;
    for (size_t k = 0; k < ops.size(); ++k) {
      onnx::NodeProto n;
      n.set_op_type(ops[k] == "exp" ? "Exp" : "Neg");
      n.set_name(StrCat(folded, "_restored_", ops[k]));
      n.add_input(in);
      const std::string out = k + 1 == ops.size() ? folded : StrCat(folded, "_restored_", ops[k]);
      n.add_output(out);
      names_.insert(out);
      in = out;
      prepend_.push_back(std::move(n));
    }
    done.push_back(folded);
  }
  DropFolded(done);
  return Status::OK();
}

}  // namespace dsc
