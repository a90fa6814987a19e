// precision: puts the forward graph into the config's mixed-precision regime, before autodiff, so
// the backward graph autodiff builds computes in the same dtypes as the forward it mirrors.
//
// Contract. Runs on the graph with a selected loss and no gradients yet; the regime comes from
// ResolvePrecision (passes/precision_policy.h); fp32 changes nothing but a half or double loss,
// which is cast to fp32 as in every regime. Then:
//  - half model: every trainable parameter initializer becomes half (round to nearest even), as
//    DeepSpeed's engine does with model.half(); accumulate later adds its fp32 master copy. With
//    amp O2's keep_batchnorm_fp32, parameters used only by BatchNormalization stay fp32.
//  - every ONNX node (and ai.dscompile.StopGradient, as Identity) gets a compute dtype D from the
//    policy table: kHalf → half, kFp32 → fp32, kFollow → the widest dtype of its non-constant float
//    inputs bound to its output's type parameter (PyTorch's promotion: constants never promote,
//    like Python scalars). Inputs bound to that type parameter are cast to D, outputs bound to it
//    become D; any other float input gets back the dtype it had before this pass, so nodes the
//    policy does not cover see the types they were exported with. D is half wherever the schema
//    admits float: ONNX admits bfloat16 for Conv, pooling and more only from opset 22, which added
//    that type and nothing else, and the type check admits it (ir/type_constraints.h).
//  - a constant (non-parameter initializer) is converted in place when it has one use, else copied
//    once per dtype; any other value is cast by one Cast node per (value, dtype), placed before its
//    first use that needs it.
//  - the loss is cast to fp32 when it is not; with loss scaling (fp16, amp) the graph gets the
//    scalar input dsc::loss_scale, which autodiff multiplies into the seed.
//  - metadata "dsc.precision" (the regime, JSON) and "dsc.precision_casts" (every inserted cast
//    with the node it feeds and why) for dsinspect.
// A graph with "dsc.precision" set is left unchanged.
#include <cmath>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <onnx/defs/schema.h>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "ir/type_constraints.h"
#include "passes/pass.h"
#include "passes/precision_policy.h"

namespace dsc {
namespace {

bool IsHalfOrFloat(DType t) { return t == DType::kFloat32 || IsHalf(t); }

int Width(DType t) { return t == DType::kFloat32 ? 2 : IsHalfOrFloat(t) ? 1 : 0; }

// Counts values that were finite and are not after the conversion (fp16's range ends at 65504).
Tensor Convert(const Tensor& t, DType to, int64_t* overflowed) {
  Tensor out(to, t.dims());
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = t.GetAsDouble(i);
    out.SetFromDouble(i, static_cast<float>(v));
    if (std::isfinite(v) && !std::isfinite(out.GetAsDouble(i))) ++*overflowed;
  }
  return out;
}

// The formal parameter of input/output i (variadic tails repeat the last one).
const onnx::OpSchema::FormalParameter* Formal(const std::vector<onnx::OpSchema::FormalParameter>& params, size_t i) {
  if (params.empty()) return nullptr;
  if (i < params.size()) return &params[i];
  return params.back().GetOption() == onnx::OpSchema::Variadic ? &params.back() : nullptr;
}

bool Allows(const onnx::OpSchema& s, const std::string& type_param, DType t) {
  auto it = s.typeConstraintMap().find(type_param);
  if (it == s.typeConstraintMap().end()) return true;  // a concrete type string: checked by the verifier
  return AdmitsDType(it->second.first, t);
}

class PrecisionRewriter {
 public:
  PrecisionRewriter(Graph& g, const PrecisionMode& mode) : g_(g), mode_(mode) {
    for (const std::string& p : g.training.parameters) params_.insert(p);
  }

  Status Run() {
    // Dtypes as exported, before anything changes (what nodes outside the policy expect).
    for (const auto& n : g_.nodes())
      for (Value* v : n->inputs())
        if (v) original_[v] = v->type.dtype;
    if (mode_.kind == PrecisionKind::kHalfModel) ConvertParameters();
    std::vector<Node*> nodes;
    for (const auto& n : g_.nodes()) nodes.push_back(n.get());
    for (Node* n : nodes) RETURN_IF_ERROR(Rewrite(*n));
    // Constants every use of which now reads a converted copy.
    for (Value* v : copied_)
      if (v->uses().empty() && !v->is_graph_output()) g_.RemoveInitializer(v);
    return Status::OK();
  }

  nlohmann::json casts() const { return casts_; }
  int64_t overflowed() const { return overflowed_; }
  std::map<std::string, int> compute_counts() const { return counts_; }

 private:
  bool KeepFp32(const Value* p) const {
    if (!mode_.fp32_batchnorm) return false;
    for (const Use& u : p->uses())
      if (u.node->op_type() != "BatchNormalization" || u.input_index == 0) return false;
    return !p->uses().empty();
  }

  void ConvertParameters() {
    for (const std::string& name : g_.training.parameters) {
      Value* p = g_.FindValue(name);
      if (!p || !p->is_initializer() || p->type.dtype != DType::kFloat32 || KeepFp32(p)) continue;
      p->set_initializer(Convert(p->initializer(), mode_.half, &overflowed_));
      p->type.dtype = mode_.half;
    }
  }

  bool Weak(const Value* v) const {
    if (v->is_initializer()) return !params_.count(v->name());
    return v->producer() && v->producer()->op_type() == "Constant";
  }

  DType Original(const Value* v) const {
    auto it = original_.find(v);
    return it == original_.end() ? v->type.dtype : it->second;
  }

  StatusOr<Value*> CastTo(Value* v, DType to, Node* before, const std::string& why) {
    auto key = std::make_pair(v, to);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    Value* out = nullptr;
    if (v->is_initializer() && Weak(v)) {
      Tensor t = Convert(v->initializer(), to, &overflowed_);
      if (v->uses().size() == 1 && !v->is_graph_output()) {
        v->set_initializer(std::move(t));
        v->type.dtype = to;
        return v;  // one use: converted in place, nothing else sees the old dtype
      }
      out = g_.AddInitializer(g_.UniqueName(v->name() + "::" + PrecisionDTypeName(to)), std::move(t));
      copied_.insert(v);
    } else {
      const std::string node_name = g_.UniqueName("precision/" + v->name() + "->" + PrecisionDTypeName(to));
      out = g_.AddCast(v, to, v->name() + "::" + PrecisionDTypeName(to), node_name, before);
      casts_.push_back({{"cast", node_name}, {"value", v->name()}, {"to", PrecisionDTypeName(to)},
                        {"for", before ? before->Describe() : "the loss"}, {"reason", why}});
    }
    cache_[key] = out;
    return out;
  }

  Status Rewrite(Node& n) {
    if (n.op_type() == "Cast" && n.domain().empty()) return Status::OK();  // an explicit cast keeps its target
    if (n.op_type() == "CastLike" && n.domain().empty()) {
      if (n.input(1)) n.output(0)->type.dtype = n.input(1)->type.dtype;
      return Status::OK();
    }
    // ai.dscompile.StopGradient computes as the Identity it is: its output follows its input.
    const bool identity = ops::IsStopGradient(n);
    const auto opset_it = g_.opsets.find("");
    const std::string& schema_op = identity ? std::string("Identity") : n.op_type();
    const onnx::OpSchema* s =
        (n.domain().empty() || identity) && opset_it != g_.opsets.end()
            ? onnx::OpSchemaRegistry::Schema(schema_op, static_cast<int>(opset_it->second), "")
            : nullptr;
    const onnx::OpSchema::FormalParameter* out0 = s ? Formal(s->outputs(), 0) : nullptr;
    const std::string type_param = out0 ? out0->GetTypeStr() : std::string();
    auto bound = [&](size_t i) {
      const onnx::OpSchema::FormalParameter* f = s ? Formal(s->inputs(), i) : nullptr;
      return f && !type_param.empty() && f->GetTypeStr() == type_param;
    };

    // The compute dtype, from the inputs bound to the output's type parameter.
    DType strong = DType::kUndefined, any = DType::kUndefined;
    for (size_t i = 0; i < n.num_inputs(); ++i) {
      Value* v = n.input(i);
      if (!v || !bound(i) || !IsHalfOrFloat(v->type.dtype)) continue;
      if (Width(v->type.dtype) > Width(any)) any = v->type.dtype;
      if (!Weak(v) && Width(v->type.dtype) > Width(strong)) strong = v->type.dtype;
    }
    DType compute = DType::kUndefined;
    std::string why;
    OpPrecision policy = OpPrecision::kFollow;
    if (any != DType::kUndefined) {
      policy = PolicyFor(n, mode_.kind);
      if (mode_.fp32_batchnorm && n.op_type() == "BatchNormalization") policy = OpPrecision::kFp32;
      why = StrCat(n.op_type(), " computes in ");
      if (policy == OpPrecision::kHalf) {
        compute = mode_.half;
      } else if (policy == OpPrecision::kFp32) {
        compute = DType::kFloat32;
      } else {
        compute = strong != DType::kUndefined ? strong : any;
      }
      if (!Allows(*s, type_param, compute)) compute = DType::kFloat32;
      why += StrCat(PrecisionDTypeName(compute), " (", mode_.fp32_batchnorm && n.op_type() == "BatchNormalization"
                                                 ? "keep_batchnorm_fp32"
                                                 : PolicyReason(n, mode_.kind),
                    ")");
      ++counts_[StrCat(n.op_type(), " ", PrecisionDTypeName(compute))];
    }
    // An op that always runs in half takes every float operand in half, whatever type parameter
    // the schema gives it (Attention's V and float mask, as PyTorch's autocast casts them to the
    // query's dtype), so its kernels see one dtype.
    std::set<std::string> follow;
    if (!type_param.empty()) follow.insert(type_param);
    if (s && policy == OpPrecision::kHalf && compute != DType::kFloat32)
      for (size_t i = 0; i < n.num_inputs(); ++i) {
        const onnx::OpSchema::FormalParameter* f = Formal(s->inputs(), i);
        if (f && n.input(i) && IsHalfOrFloat(n.input(i)->type.dtype) && Allows(*s, f->GetTypeStr(), compute))
          follow.insert(f->GetTypeStr());
      }
    auto follows = [&](bool input, size_t i) {
      const onnx::OpSchema::FormalParameter* f = s ? Formal(input ? s->inputs() : s->outputs(), i) : nullptr;
      return f && follow.count(f->GetTypeStr()) > 0;
    };
    for (size_t i = 0; i < n.num_inputs(); ++i) {
      Value* v = n.input(i);
      if (!v || !IsHalfOrFloat(v->type.dtype)) continue;
      const bool to_compute = compute != DType::kUndefined && follows(true, i);
      const DType target = to_compute ? compute : Original(v);
      if (v->type.dtype == target) continue;
      ASSIGN_OR_RETURN(Value * c, CastTo(v, target, &n,
                                         to_compute ? why : StrCat(n.op_type(), " input ", i, " keeps its exported ",
                                                                   PrecisionDTypeName(target))));
      n.SetInput(i, c);
    }
    if (compute != DType::kUndefined)
      for (size_t o = 0; o < n.num_outputs(); ++o) {
        Value* v = n.output(o);
        if (follows(false, o) && IsHalfOrFloat(v->type.dtype)) v->type.dtype = compute;
      }
    return Status::OK();
  }

  Graph& g_;
  const PrecisionMode& mode_;
  std::set<std::string> params_;
  std::map<const Value*, DType> original_;
  std::map<std::pair<Value*, DType>, Value*> cache_;
  std::set<Value*> copied_;
  nlohmann::json casts_ = nlohmann::json::array();
  std::map<std::string, int> counts_;
  int64_t overflowed_ = 0;
};

// The first trainable parameter whose dtype satisfies `pred`, or null.
template <typename Pred>
const Value* FirstParameter(const Graph& g, Pred pred) {
  for (const std::string& name : g.training.parameters)
    if (const Value* p = g.FindValue(name); p && pred(p->type.dtype)) return p;
  return nullptr;
}

// Casts the loss to fp32 when it is not (the gradient seed 1 is exact in every float type).
StatusOr<bool> WidenLoss(Graph& g) {
  Value* loss = g.FindValue(g.training.loss);
  if (!loss) return Internal("the loss '", g.training.loss, "' is not in the graph");
  if (loss->type.dtype == DType::kFloat32) return false;
  Value* wide = g.AddCast(loss, DType::kFloat32, loss->name() + "::fp32", g.UniqueName("precision/loss->fp32"));
  std::vector<Value*> outs = g.outputs();
  for (Value*& o : outs)
    if (o == loss) o = wide;
  g.SetOutputs(outs);
  g.training.loss = wide->name();
  return true;
}

class PrecisionPass : public GraphPass {
 public:
  const char* name() const override { return "precision"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    if (!ctx.config) return FailedPrecondition("precision needs the DeepSpeed config");
    if (g.training.loss.empty() || g.metadata.count("dsc.precision")) return false;
    if (!g.training.gradients.empty())
      return FailedPrecondition("precision runs before autodiff (the backward must mirror the cast forward)");
    ASSIGN_OR_RETURN(PrecisionMode mode, ResolvePrecision(*ctx.config));
    // A model exported in half trains in half without a regime (DeepSpeed's optimizer on a half
    // module), and its loss is widened all the same: dsrun reads and reports one float.
    if (!mode.active()) {
      if (const Value* p = FirstParameter(g, IsHalf); p && ctx.log)
        *ctx.log << "precision: none: the parameters are " << PrecisionDTypeName(p->type.dtype)
                 << " and train as they are (optimizer states too, no fp32 master weights); "
                 << (p->type.dtype == DType::kFloat16 ? "\"fp16\"" : "\"bf16\"")
                 << ": {\"enabled\": true} adds fp32 master weights\n";
      // float16 moments are where this goes wrong: Adam's squared gradients below float16's
      // smallest subnormal (6e-8) become 0 and the step divides by eps alone.
      if (const Value* p = FirstParameter(g, [](DType t) { return t == DType::kFloat16; }); p && ctx.warn)
        *ctx.warn << "dscompile: warning: the parameters are fp16 (e.g. '" << p->name() << "') and the config "
                  << "enables neither fp16 nor bf16: they train in fp16 with fp16 optimizer states, as DeepSpeed's "
                  << "optimizer trains an fp16 module, where Adam's squared gradients can underflow to 0 "
                  << "and its steps blow up; \"fp16\": {\"enabled\": true} keeps fp32 master weights and "
                  << "states and scales the loss\n";
      return WidenLoss(g);
    }

    PrecisionRewriter rewriter(g, mode);
    RETURN_IF_ERROR(rewriter.Run());
    RETURN_IF_ERROR(WidenLoss(g).status());
    if (mode.loss_scaling) {
      if (g.FindValue(ops::kLossScaleInput)) return FailedPrecondition("the graph already has a value ", ops::kLossScaleInput);
      g.AddInput(ops::kLossScaleInput, TensorType{DType::kFloat32, Shape{}});
    }
    nlohmann::json regime = {{"kind", mode.kind == PrecisionKind::kHalfModel ? "half model" : "autocast"},
                             {"source", mode.source},
                             {"half", PrecisionDTypeName(mode.half)},
                             {"master_weights", mode.master ? PrecisionDTypeName(mode.master_dtype) : "none"},
                             {"optimizer_states", PrecisionDTypeName(mode.optimizer_state_dtype)},
                             {"fp32_batchnorm", mode.fp32_batchnorm},
                             {"loss_scaling", mode.loss_scaling},
                             {"check_overflow", mode.check_overflow},
                             {"grad_accum", PrecisionDTypeName(mode.grad_accum)},
                             {"communication", PrecisionDTypeName(mode.communication)}};
    nlohmann::json counts = nlohmann::json::object();
    for (const auto& [k, n] : rewriter.compute_counts()) counts[k] = n;
    regime["compute"] = counts;
    // DeepSpeed's ZeRO-0 wrapper steps the optimizer once before training; dsrun does the same.
    if (const int64_t calls = ctx.config ? WrapperCallsBeforeTraining(*ctx.config) : 0; calls > 0)
      regime["optimizer_calls_before_training"] = calls;
    g.metadata["dsc.precision"] = regime.dump();
    g.metadata["dsc.precision_casts"] = rewriter.casts().dump();
    if (rewriter.overflowed() > 0 && ctx.warn)
      *ctx.warn << "dscompile: warning: precision: " << rewriter.overflowed() << " finite constant or parameter values "
                << "are beyond " << PrecisionDTypeName(mode.half) << "'s range and became infinite (e.g. an attention mask of "
                << "float32's minimum); export the model so such constants fit"
                << (mode.half == DType::kBFloat16 ? " (bf16 rounds only float32's extremes up to infinity)" : ", or use bf16")
                << "\n";
    if (ctx.log)
      *ctx.log << "precision: " << mode.source << ": " << regime["kind"].get<std::string>() << " in "
               << PrecisionDTypeName(mode.half) << ", " << rewriter.casts().size() << " casts inserted\n";
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> CreatePrecisionPass() { return std::make_unique<PrecisionPass>(); }

}  // namespace dsc
