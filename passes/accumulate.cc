// accumulate: splits the differentiated "train" program into the "micro_step" and "step"
// programs of gradient accumulation, with parameters, accumulators and BatchNorm statistics as
// persistent state shared by name.
//
// Contract. Input: a module whose program "train" computes the loss (Graph::training.loss) and,
// for each trainable initializer Graph::training.parameters[i], its gradient in the value named
// Graph::training.gradients[i] (autodiff). Output:
//  - state (in this order): every parameter P (kind parameter, initial value = its initializer),
//    BatchNorm running statistics (kind buffer, initial value = their initializer), and
//    ops::GradAccName(P) (kind gradient, owner P, zeros);
//  - "micro_step" (the former "train"): P, the statistics and the accumulators become graph inputs
//    after the data inputs; the graph ends with Assign(stat, bn_output) for each training-mode
//    BatchNormalization statistic, then Accumulate(P::grad, grad_P) for each parameter, except
//    that where micro_step will have no collectives (passes/zero_layout.h) each Accumulate
//    follows the node that makes grad_P instead. Its only
//    outputs are the former ones minus the gradients (the loss stays, Graph::training.loss too);
//    Graph::training.parameters/gradients are cleared, since the state table now lists them;
//  - "step": inputs P..., P::grad..., dsc::lr float[], dsc::step int64[];
//      grad_sum_squares = SumSquares(P::grad...)
//      dsc::grad_norm   = Sqrt(grad_sum_squares)            (a graph output)
//      grad_scale       = ClipScale<max_norm = gradient_clipping>(dsc::grad_norm)
//      ZeroFill(P::grad) for each parameter
//    The optimizer pass inserts the parameter updates (reading grad_scale) before the ZeroFills.
// Mixed precision (the graph carries the precision pass's "dsc.precision"; regime from
// ResolvePrecision): a half parameter P gets the master state MasterName(P) (kind master, owner P,
// the regime's master dtype, initial value = P's half value widened), which step takes as an
// input after the accumulators. Accumulators have data_types.grad_accum_dtype (default: the model
// dtype). With loss scaling, step also takes dsc::loss_scale and unscales:
//      norm             = Sqrt(grad_sum_squares)            (of the scaled gradients)
//      dsc::grad_norm   = Div(norm, dsc::loss_scale)
//      grad_scale       = Div(ClipScale(dsc::grad_norm), dsc::loss_scale)
// which is DeepSpeed's unscale_and_clip_grads: gradients / (scale * max(1, norm / clip)). With an
// overflow check, dsc::overflow = Or(IsInf(norm), IsNaN(norm)) is a graph output too.
//
// How this realises gradient_accumulation_steps (gas): the runtime runs micro_step gas times, each
// on its own micro-batch, then step once. Autodiff seeds d(loss) with 1/gas, so after gas
// micro-steps the accumulators hold the mean gradient over the whole train batch, exactly what
// DeepSpeed's engine holds when it scales each micro-batch loss by 1/gas before backward. The
// norm, clipping and update then see the same numbers as DeepSpeed's optimizer step.
//
// BatchNorm statistics: ONNX BatchNormalization in training mode returns the updated running mean
// and variance as outputs 1 and 2 instead of writing its inputs 3 and 4. Writing them back makes
// the state evolve like PyTorch's buffers. A statistic whose output is omitted stays a constant.
// No "train" program but a "micro_step" one means the split is already done: no change.
#include <set>

#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "passes/pass.h"
#include "passes/precision_policy.h"
#include "passes/zero_layout.h"

namespace dsc {
namespace {

inline constexpr const char* kTrainProgram = "train";
inline constexpr const char* kMicroStepProgram = "micro_step";
inline constexpr const char* kStepProgram = "step";

TensorType ScalarType(DType dtype) { return TensorType{dtype, Shape{}}; }

TensorType StaticType(const Tensor& t) {
  Shape s;
  for (int64_t d : t.dims()) s.push_back(Dim::Static(d));
  return TensorType{t.dtype(), s};
}

// The BatchNormalization running statistics to make state: (stat initializer, updated output).
std::vector<std::pair<Value*, Value*>> RunningStatistics(const Graph& g, const std::set<std::string>& params) {
  std::vector<std::pair<Value*, Value*>> out;
  std::set<Value*> seen;
  for (const auto& n : g.nodes()) {
    if (n->domain() != "" || n->op_type() != "BatchNormalization" || n->GetInt("training_mode", 0) == 0) continue;
    for (size_t k : {3, 4}) {
      Value* stat = n->input(k);
      if (!stat || !stat->is_initializer() || params.count(stat->name())) continue;
      if (k - 2 >= n->num_outputs() || n->output(k - 2)->name().empty()) continue;
      if (!seen.insert(stat).second) continue;  // shared by two BNs: the later update wins, as in eager
      out.emplace_back(stat, n->output(k - 2));
    }
  }
  return out;
}

class AccumulatePass : public Pass {
 public:
  const char* name() const override { return "accumulate"; }

  StatusOr<bool> Run(Module& m, const PassContext& ctx) override {
    if (!ctx.config) return FailedPrecondition("accumulate needs the DeepSpeed config");
    PlanProgram* train = m.FindProgram(kTrainProgram);
    if (!train) {
      if (m.FindProgram(kMicroStepProgram)) return false;
      return FailedPrecondition("accumulate needs the differentiated program \"", kTrainProgram,
                                "\" (run autodiff first)");
    }
    if (m.FindProgram(kStepProgram)) return FailedPrecondition("the module already has a \"step\" program");
    Graph& g = *train->graph;
    const TrainingInfo& t = g.training;
    if (t.loss.empty()) return FailedPrecondition("accumulate needs a selected loss (run select-loss)");
    if (t.parameters.empty()) return FailedPrecondition("accumulate: there are no trainable parameters");
    if (t.gradients.size() != t.parameters.size())
      return FailedPrecondition("accumulate: ", t.parameters.size(), " parameters but ", t.gradients.size(),
                                " gradients (run autodiff first)");

    // Decide everything before mutating.
    std::vector<Value*> params, grads;
    std::set<std::string> param_names(t.parameters.begin(), t.parameters.end());
    for (size_t i = 0; i < t.parameters.size(); ++i) {
      Value* p = g.FindValue(t.parameters[i]);
      if (!p || !p->is_initializer()) return Internal("parameter '", t.parameters[i], "' is not an initializer");
      Value* grad = g.FindValue(t.gradients[i]);
      if (!grad) return Internal("the gradient '", t.gradients[i], "' of parameter '", p->name(), "' does not exist");
      if (grad->type.dtype != p->initializer().dtype() || !grad->type.shape || *grad->type.shape != *StaticType(p->initializer()).shape)
        return Internal("the gradient '", grad->name(), "' is ", TypeToString(grad->type), " but parameter '",
                        p->name(), "' is ", TypeToString(StaticType(p->initializer())));
      const std::string acc = ops::GradAccName(p->name());
      if (g.FindValue(acc) || m.FindState(acc))
        return FailedPrecondition("the name '", acc, "' of ", p->name(), "'s gradient accumulator is already in use");
      params.push_back(p);
      grads.push_back(grad);
    }
    const std::vector<std::pair<Value*, Value*>> stats = RunningStatistics(g, param_names);

    // The regime the precision pass applied (none: every tensor keeps its dtype).
    PrecisionMode mode;
    if (g.metadata.count("dsc.precision")) {
      ASSIGN_OR_RETURN(mode, ResolvePrecision(*ctx.config));
    }
    // A half parameter's gradient accumulates in the regime's dtype; a parameter the regime keeps
    // fp32 (autocast, amp O2's BatchNorm) in its own dtype; without a regime, grad_accum_dtype.
    auto accum_dtype = [&](const Value* p) {
      if (!mode.active()) return PrecisionDTypeFromName(ctx.config->grad_accum_dtype());
      return IsHalf(p->type.dtype) ? mode.grad_accum : p->type.dtype;
    };

    // State table and micro_step inputs.
    std::vector<Value*> masters;  // parallel to params; null: the parameter is its own master
    for (Value* p : params) {
      const Tensor init = p->initializer();
      RETURN_IF_ERROR(m.AddState(StateInfo{p->name(), StateKind::kParameter, "", init.dtype(), init.dims()}, &init));
      masters.push_back(nullptr);
      if (IsHalf(init.dtype()) && mode.master) {
        const std::string master = ops::MasterName(p->name());
        if (g.FindValue(master) || m.FindState(master))
          return FailedPrecondition("the name '", master, "' of ", p->name(), "'s master weights is already in use");
        Tensor wide(mode.master_dtype, init.dims());
        for (int64_t i = 0; i < init.numel(); ++i) wide.SetFromDouble(i, init.GetAsDouble(i));
        RETURN_IF_ERROR(m.AddState(StateInfo{master, StateKind::kMaster, p->name(), mode.master_dtype, init.dims()}, &wide));
        masters.back() = p;
      }
      g.ConvertInitializerToInput(p);
    }
    for (const auto& [stat, updated] : stats) {
      const Tensor init = stat->initializer();
      RETURN_IF_ERROR(m.AddState(StateInfo{stat->name(), StateKind::kBuffer, "", init.dtype(), init.dims()}, &init));
      g.ConvertInitializerToInput(stat);
    }
    std::vector<Value*> accs;
    for (Value* p : params) {
      const std::string acc = ops::GradAccName(p->name());
      const TensorType acc_type{accum_dtype(p), p->type.shape};
      RETURN_IF_ERROR(m.AddState(StateInfo{acc, StateKind::kGradient, p->name(), acc_type.dtype, DimsOf(*p)}, nullptr));
      accs.push_back(g.AddInput(acc, acc_type));
    }

    g.opsets[kDscDomain] = 1;
    for (const auto& [stat, updated] : stats) g.AddNode(ops::kAssign, {stat, updated}, {}, kDscDomain);
    // Where micro_step will have no collectives, each Accumulate follows the node that makes its
    // gradient, which then dies at once instead of every parameter's gradient living to the end
    // of the backward. Where zero-partition reduces gradients in micro_step, they stay at the end:
    // schedule-collectives forms its buckets from there and then moves them after the waits.
    const bool early = ctx.world_size <= 1 || !ReducesInMicroStep(ctx.config->zero.stage, ctx.config->gradient_accumulation_steps);
    for (size_t i = 0; i < params.size(); ++i) {
      Node* producer = early ? grads[i]->producer() : nullptr;
      g.AddNode(ops::kAccumulate, {accs[i], grads[i]}, {}, kDscDomain, "", producer ? g.NextNode(producer) : nullptr);
    }
    std::set<Value*> grad_set(grads.begin(), grads.end());
    std::vector<Value*> outputs;
    for (Value* v : g.outputs())
      if (!grad_set.count(v)) outputs.push_back(v);
    g.SetOutputs(outputs);
    g.training.parameters.clear();
    g.training.gradients.clear();
    train->name = kMicroStepProgram;
    g.name = kMicroStepProgram;

    const bool scaled = g.FindValue(ops::kLossScaleInput) != nullptr;
    m.programs.push_back(PlanProgram{kStepProgram, BuildStep(g, params, masters, accs, mode, scaled,
                                                             ctx.config->gradient_clipping)});
    return true;
  }

 private:
  static std::vector<int64_t> DimsOf(const Value& v) {
    std::vector<int64_t> dims;
    for (const Dim& d : *v.type.shape) dims.push_back(d.value);
    return dims;
  }

  static std::unique_ptr<Graph> BuildStep(const Graph& micro, const std::vector<Value*>& params,
                                          const std::vector<Value*>& masters, const std::vector<Value*>& micro_accs,
                                          const PrecisionMode& mode, bool scaled, double clipping) {
    auto s = std::make_unique<Graph>();
    s->name = kStepProgram;
    s->ir_version = micro.ir_version;
    s->opsets = micro.opsets;
    if (auto it = micro.metadata.find("dsc.precision"); it != micro.metadata.end()) s->metadata[it->first] = it->second;
    std::vector<Value*> accs;
    for (Value* p : params) s->AddInput(p->name(), p->type);
    for (Value* a : micro_accs) accs.push_back(s->AddInput(a->name(), a->type));
    for (Value* p : masters)
      if (p) s->AddInput(ops::MasterName(p->name()), TensorType{mode.master_dtype, p->type.shape});
    s->AddInput(ops::kLrInput, ScalarType(DType::kFloat32));
    s->AddInput(ops::kStepInput, ScalarType(DType::kInt64));
    Value* loss_scale = scaled ? s->AddInput(ops::kLossScaleInput, ScalarType(DType::kFloat32)) : nullptr;
    auto scalar = [&](const std::string& op, std::vector<Value*> in, const std::string& out, DType t = DType::kFloat32,
                      const std::string& domain = "") {
      Node* n = s->AddNode(op, in, {out}, domain);
      n->output(0)->type = ScalarType(t);
      return n->output(0);
    };
    Value* sumsq = scalar(ops::kSumSquares, accs, "grad_sum_squares", DType::kFloat32, kDscDomain);
    Value* norm = scalar("Sqrt", {sumsq}, loss_scale ? "grad_norm_scaled" : ops::kGradNormOutput);
    Value* grad_norm = loss_scale ? scalar("Div", {norm, loss_scale}, ops::kGradNormOutput) : norm;
    Value* clip = scalar(ops::kClipScale, {grad_norm}, loss_scale ? "clip_scale" : "grad_scale", DType::kFloat32, kDscDomain);
    clip->producer()->SetAttr("max_norm", static_cast<float>(clipping));
    if (loss_scale) scalar("Div", {clip, loss_scale}, "grad_scale");
    s->AddOutput(grad_norm);
    if (mode.check_overflow) {
      // The norm is global (all-reduced under ZeRO), so every rank reaches the same verdict.
      Value* inf = scalar("IsInf", {norm}, "grad_norm_is_inf", DType::kBool);
      Value* nan = scalar("IsNaN", {norm}, "grad_norm_is_nan", DType::kBool);
      s->AddOutput(scalar("Or", {inf, nan}, ops::kOverflowOutput, DType::kBool));
    }
    for (Value* acc : accs) s->AddNode(ops::kZeroFill, {acc}, {}, kDscDomain);
    return s;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateAccumulatePass() { return std::make_unique<AccumulatePass>(); }

}  // namespace dsc
