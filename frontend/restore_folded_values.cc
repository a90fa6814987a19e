// Restoring parameters folded into a value computed from them alone: lookups, views, invertible
// elementwise chains (exp, neg, sigmoid, ...); and GroupNorm's affine parameters' 1-D shape.

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

namespace {

// Elementwise aten calls with an inverse, as ONNX ops: a parameter folded through one of them
// comes back as the inverse of the folded values.
struct InvertibleCall {
  const char* aten;
  const char* onnx_op;
  bool (*invert)(double* v);  // false outside the call's range
};

const InvertibleCall* FindInvertible(const std::string& aten) {
  static const InvertibleCall calls[] = {
      {"exp", "Exp", [](double* v) { return *v > 0 && (*v = std::log(*v), true); }},
      {"neg", "Neg", [](double* v) { return *v = -*v, true; }},
      {"sigmoid", "Sigmoid", [](double* v) { return *v > 0 && *v < 1 && (*v = std::log(*v / (1 - *v)), true); }},
      {"tanh", "Tanh", [](double* v) { return *v > -1 && *v < 1 && (*v = std::atanh(*v), true); }},
      {"reciprocal", "Reciprocal", [](double* v) { return *v != 0 && (*v = 1 / *v, true); }},
      {"sqrt", "Sqrt", [](double* v) { return *v >= 0 && (*v = *v * *v, true); }},
      {"log", "Log", [](double* v) { return std::isfinite(std::exp(*v)) && (*v = std::exp(*v), true); }},
  };
  for (const InvertibleCall& c : calls)
    if (aten == c.aten) return &c;
  return nullptr;
}

}  // namespace

// logit_scale.exp() (CLIP, SigLIP), -torch.exp(A_log) (Mamba and its hybrids, then unsqueezed),
// RWKV's -exp(time_decay), a gate's sigmoid(g) or tanh(g): a parameter through one invertible
// elementwise call (FindInvertible), or through exp and neg, and calls that keep the element order,
// folds into an initializer named after the last call ("neg", folded_from [A_log, exp]). With exp
// and neg, the values' sign tells their order (exp's results are positive); other pairs are left,
// their order unknown. The parameter comes back as the inverse of the folded values in the folded
// shape (within an ulp or so of PyTorch's: the file holds the rounded result), and the calls are
// applied to it again.
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
    std::vector<const InvertibleCall*> calls;
    for (const std::string& c : chain) {
      if (const InvertibleCall* call = FindInvertible(FxOpOfName(c))) calls.push_back(call);
      else known &= KeepsElementOrder(c) || IsTorchlibConstant(c);
    }
    const std::string& target = signature_.at(params[0]).target;
    if (!known || calls.empty() || calls.size() > 2 || names_.count(target)) continue;
    onnx::TensorProto* t = FindInitializer(folded);
    if (!t) continue;
    ASSIGN_OR_RETURN(Tensor f, InitializerData(*t, *held_));
    if (f.dtype() != DType::kFloat32 && f.dtype() != DType::kFloat64) continue;
    std::vector<const InvertibleCall*> ops;  // in the order the model applies them
    if (calls.size() == 2) {
      const InvertibleCall* exp = FindInvertible("exp");
      const InvertibleCall* neg = FindInvertible("neg");
      if (!((calls[0] == exp && calls[1] == neg) || (calls[0] == neg && calls[1] == exp))) continue;
      bool negative = true, positive = true;
      for (int64_t i = 0; i < f.numel(); ++i) {
        negative &= f.GetAsDouble(i) < 0;
        positive &= f.GetAsDouble(i) > 0;
      }
      if (negative) ops = {exp, neg};
      else if (positive) ops = {neg, exp};
      else continue;
    } else {
      ops = calls;
    }
    Tensor w(f.dtype(), f.dims());
    bool ok = true;
    for (int64_t i = 0; i < f.numel() && ok; ++i) {
      double v = f.GetAsDouble(i);
      for (auto op = ops.rbegin(); op != ops.rend() && ok; ++op) ok = (*op)->invert(&v);
      w.SetFromDouble(i, v);
    }
    if (!ok) continue;
    AddValueInfo(target, w, params[0]);
    AddHeldInitializer(g_, target, std::move(w), held_);
    std::string in = target;
    for (size_t k = 0; k < ops.size(); ++k) {
      onnx::NodeProto n;
      n.set_op_type(ops[k]->onnx_op);
      n.set_name(StrCat(folded, "_restored_", ops[k]->aten));
      n.add_input(in);
      const std::string out = k + 1 == ops.size() ? folded : StrCat(folded, "_restored_", ops[k]->aten);
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

// aten.group_norm's weight and bias are 1-D [C]. torchlib unsqueezes them to [C, 1, ...] for its
// Mul and Add, and a fold (RestoreFoldedViews) or a merge's copy keeps that shape. A parameter of
// that shape read only there comes back 1-D, viewed by a Reshape, so trained weights load into the
// PyTorch module and Muon's rule (matrices only) sees PyTorch's shape.
Status ParameterRestorer::FlattenGroupNormAffines() {
  for (const auto& [placeholder, input] : signature_) {
    const std::string& target = input.target;
    if (input.kind != "PARAMETER" || read_in_subgraph_.count(target)) continue;
    onnx::TensorProto* t = FindInitializer(target);
    if (!t || t->dims_size() < 2) continue;
    bool unit_tail = true;
    for (int i = 1; i < t->dims_size(); ++i) unit_tail &= t->dims(i) == 1;
    std::vector<std::pair<onnx::NodeProto*, int>> reads;
    bool group_norm = unit_tail;
    for (auto& n : *g_->mutable_node())
      for (int i = 0; i < n.input_size() && group_norm; ++i)
        if (n.input(i) == target) {
          const std::string* fx = Fx(n);
          const std::string& op = n.op_type();
          group_norm = fx && IsGroupNorm(*fx) && !IsRewritten(n) &&
                       (op == "Mul" || op == "Add" || ((op == "Cast" || op == "CastLike") && i == 0));
          reads.push_back({&n, i});
        }
    for (const onnx::NodeProto& n : prepend_)
      for (const auto& in : n.input()) group_norm &= in != target;
    const std::string viewed = StrCat(target, "_grouped"), shape_name = StrCat(target, "_grouped_shape");
    if (!group_norm || reads.empty() || names_.count(viewed) || names_.count(shape_name)) continue;
    const std::vector<int64_t> dims(t->dims().begin(), t->dims().end());
    ASSIGN_OR_RETURN(Tensor data, InitializerData(*t, *held_));
    Tensor flat = data.Reshaped({data.numel()});
    RemoveInitializer(target);
    AddHeldInitializer(g_, target, std::move(flat), held_);
    initializers_.insert(target);
    initializer_dims_[target] = {dims[0]};
    for (auto& v : *g_->mutable_value_info())
      if (v.name() == target && v.type().has_tensor_type()) {
        auto* shape = v.mutable_type()->mutable_tensor_type()->mutable_shape();
        shape->clear_dim();
        shape->add_dim()->set_dim_value(dims[0]);
      }
    AddHeldInitializer(g_, shape_name,
                       Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(dims.size())}, dims), held_);
    names_.insert(shape_name);
    names_.insert(viewed);
    onnx::NodeProto reshape;
    reshape.set_op_type("Reshape");
    reshape.set_name(viewed);
    reshape.add_input(target);
    reshape.add_input(shape_name);
    reshape.add_output(viewed);
    prepend_.push_back(std::move(reshape));
    for (auto& [node, i] : reads) node->set_input(i, viewed);
  }
  return Status::OK();
}

}  // namespace dsc
