// optimizer: inserts every parameter's update into the "step" program, with the semantics of the
// optimizer DeepSpeed builds from the config's optimizer section.
//
// Contract. Input: a module after accumulate (state kind parameter P with accumulator P::grad;
// program "step" with inputs P, P::grad, dsc::lr, dsc::step and the value grad_scale). For each
// parameter, in state-table order, one node goes before the first ZeroFill of "step", so it reads
// the accumulated gradient before it is cleared:
//  - Adam family ("adam", "adamw"; FusedAdam, torch.optim.Adam/AdamW, DeepSpeedCPUAdam alike):
//      AdamStep<beta1, beta2, epsilon, weight_decay, adam_w_mode, bias_correction>
//        (P, P::grad, P::exp_avg, P::exp_avg_sq, dsc::lr, dsc::step, grad_scale[, dsc::beta1])
//    with states P::exp_avg and P::exp_avg_sq (kind optimizer, owner P, zeros). When the scheduler
//    is OneCycle with cycle_momentum, the runtime feeds beta1 each step through the dsc::beta1
//    input, and beta2 is 0.99 because DeepSpeed's OneCycle writes (momentum, 0.99) into betas.
//  - "SGD" (torch.optim.SGD): SGDStep<momentum, dampening, nesterov, weight_decay>
//        (P, P::grad, P::momentum_buffer or omitted when momentum is 0, dsc::lr, dsc::step, grad_scale)
//    with state P::momentum_buffer (kind optimizer, owner P, zeros) when momentum != 0.
//  - the element-wise optimizers (FusedLion for "lion", torch.optim.Adagrad for "adagrad", and
//    torch.optim's "RMSprop", "Adamax", "NAdam", "RAdam", "Adadelta" by name):
//      OptimStep<algorithm, its attributes from the section>
//        (P, P::grad, P::<state>..., dsc::lr, dsc::step, grad_scale)
//    with the states ir/optim_algorithms.h names for the algorithm (P::exp_avg, P::sum,
//    P::square_avg, ...; kind optimizer, owner P, zeros; Adagrad's initial_accumulator_value is an
//    attribute applied at step 1). With OneCycle's cycle_momentum, Lion, Adamax, RAdam and NAdam
//    take dsc::beta1 as an input after skip (empty when absent) and beta2 = 0.99, as Adam; NAdam
//    also takes its state P::mu_product (float[], kind optimizer, owner P, initially 1) after an
//    empty param_copy, as torch keeps mu_product per parameter: it multiplies every applied step's
//    beta1, so it cannot be recomputed from the step. Those without betas train uncycled, as
//    DeepSpeed's OneCycle does.
//  - "lamb" (DeepSpeed's FusedLamb): its trust ratio needs each tensor's norms, so two nodes:
//      LambMoments<beta1, beta2, epsilon, eps_inside_sqrt, weight_decay>
//        (P, P::grad, P::exp_avg, P::exp_avg_sq, grad_scale) -> P@lamb_sums float[2]
//    for every parameter, then lamb_sums = Concat(every P@lamb_sums) (float[2k], parameter order;
//    zero-partition all-reduces this one tensor when the parameters are sharded), then for every
//    parameter LambApply<the same, bias_correction, max_coeff, min_coeff, slot = its index>
//        (P, lamb_sums, P::exp_avg, P::exp_avg_sq, dsc::lr or its group's, dsc::step)
//    and its master refresh. States P::exp_avg and P::exp_avg_sq, as FusedLamb's state dict.
//    With OneCycle's cycle_momentum both nodes take dsc::beta1 after skip and beta2 is 0.99.
//  - "muon" (DeepSpeed's MuonWithAuxAdam): a parameter Muon takes (UsesMuonByDefault, or its
//    group's use_muon) gets
//      update = MuonMomentum<momentum>(P, P::grad, P::momentum_buffer, grad_scale[, skip])
//      MuonApply<ns_method, ns_steps = 5, weight_decay>(P, update, lr[, skip])
//    (zero-partition gathers the update between them when P is sharded: the orthogonalisation
//    needs the whole matrix); the others the AdamStep above with the aux Adam's betas and eps,
//    adam_w_mode and bias correction, states P::exp_avg and P::exp_avg_sq, as in its state dict.
//    dsc::lr is the Muon group's lr; the Adam parameters read Mul(dsc::lr, adam_lr / muon_lr)
//    unless the scheduler writes one absolute lr into every group (WarmupLR, WarmupDecayLR,
//    OneCycle, LRRangeTest), as DeepSpeed's do. OneCycle does not cycle its betas: MuonWithAuxAdam's
//    defaults have none (OptimizerConfig::has_betas), so it trains uncycled with DeepSpeed's warning.
//  - "onebitadam" (DeepSpeed's OnebitAdam; ZeRO 0 only, as DeepSpeed asserts): for every
//    parameter OnebitMomentum<beta1, freeze_step>(P, P::grad, P::exp_avg, dsc::step, grad_scale),
//    then with more than one rank the CompressedAllReduce<world, freeze_step> of the momenta,
//    then for every parameter OnebitAdamStep<beta1, beta2, epsilon, weight_decay, freeze_step>
//    (P, P::grad, P::exp_avg, P::exp_avg_sq, lr, dsc::step, grad_scale) and its master refresh.
//    freeze_step is OptimizerConfig::onebit_last_uncompressed_step(); zero-partition retires the
//    gradient all-reduces after it (AllReduce until_step). Without masters (fp32) each parameter
//    is compressed on its own (DeepSpeed's optimizer sees the model's tensors); with masters
//    (fp16/bf16) each parameter group is one compressed buffer (DeepSpeed's FP16_Optimizer hands
//    it one flat fp32 tensor per group). The errors are states of kind compression_error:
//    P::worker_error and P::server_error, or dsc::onebit_groupK::worker_error/server_error.
//    OneCycle's momentum cycling is refused with it.
//  The 1-bit family under fp16/bf16 (ZeRO 0), traced in DeepSpeed at edaa72212: the engine picks
//  DDP_BFLOAT16 or FP16 (engine.py:2011-2019: grad_accum_dtype defaults to the model dtype, so bf16
//  at ZeRO 0 is no BF16_Optimizer) and _configure_fp16_optimizer (engine.py:2279) wraps OnebitAdam
//  and ZeroOneAdam in FP16_Optimizer (counted as fused, :2289: one flat fp32 master per group) and
//  OnebitLamb in FP16_UnfusedOptimizer (per-tensor fp32 masters; OnebitLamb fuses the momenta into
//  one buffer itself, as in fp32). Both constructors call optimizer.step() once on zero gradients
//  (fused_optimizer.py:123, unfused_optimizer.py:407): the optimizer's initialising call, so the
//  first training step is its call 2 and moves the parameters, and the freeze, counted in calls,
//  comes one training step earlier; the 1-bit nodes read dsc::step + OnebitCallsBeforeTraining
//  ("dsc::step::optimizer_call"), the retiring AllReduces carry step_offset. The wrappers unscale
//  and clip the fp32 gradients before step() (grad_scale here), compress what the optimizer
//  compresses (the fp32 momentum, 0/1 Adam's fp32 gradient and accumulator), and copy the masters
//  into the half parameters after it (the refresh above). An overflow returns before step()
//  (fused_optimizer.py:264-278, unfused_optimizer.py:197-205): no state, error or call count
//  moves (every node takes dsc::overflow as skip). FP16_Optimizer skips only when it scales the
//  loss, so in bf16 OnebitAdam and ZeroOneAdam never skip; FP16_UnfusedOptimizer checks in bf16
//  too (ResolvePrecision). While the gradients are each rank's own, CheckOverflow all-reduces the
//  verdict over the world (runtime/utils.py:308): zero-partition adds that AllReduce.
//  - "zerooneadam" (DeepSpeed's ZeroOneAdam, 0/1 Adam; ZeRO 0 only): for every parameter
//    ZoadamStep<beta1, beta2, epsilon, weight_decay, schedule, world>(P, P::grad, P::exp_avg,
//    P::exp_avg_sq, P::momentum_accumulator, P::lrs, lr, dsc::step, grad_scale), then with more
//    than one rank ZoadamPhase<schedule>(P::worker_error, P::server_error, dsc::step) ->
//    P@compress_skip gating CompressedAllReduce<world, freeze_step = 2>(the errors, dsc::step,
//    P@compress_skip, P::momentum_accumulator), then for every parameter ZoadamApply<...>(P,
//    P::momentum_accumulator, P::exp_avg, P::exp_avg_sq, P::lrs, lr, dsc::step). The schedule
//    (ir/dsc_ops.h) is last_var_step = OptimizerConfig::zoadam_last_variance_step() and the
//    config's var_update_scaler, local_step_scaler, local_step_clipper; zero-partition gives the
//    gradient all-reduces until_step and var_update_scaler (variance steps only). The accumulator,
//    lrs (float64[1]) and errors are kind compression_error. With masters the units are groups,
//    as OneBitAdam's.
//  - "onebitlamb" (DeepSpeed's OnebitLamb; ZeRO 0, float32 parameters or fp32 masters): for every
//    parameter OnebitLambSnapshot<freeze_step>(P::exp_avg, P::lamb_state, dsc::step) ->
//    (P@exp_avg_last, P@momentum_scale), then onebit_lamb_scales = Concat(every momentum_scale),
//    then for every parameter OnebitLambMomentum<beta1, freeze_step, slot>(P, P::grad, P::exp_avg,
//    P::lamb_state, onebit_lamb_scales, dsc::step, grad_scale), then with more than one rank ONE
//    CompressedAllReduce<world, freeze_step> of every momentum (DeepSpeed fuses them into one flat
//    buffer; errors dsc::onebit_lamb::worker_error/server_error), then for every parameter
//    OnebitLambStep<...>(P, P::grad, P::exp_avg, P::exp_avg_sq, P::exp_avg_sq_fresh, P::lamb_state,
//    P@exp_avg_last, lr, dsc::step, grad_scale). States as DeepSpeed's state dict: exp_avg,
//    exp_avg_sq, exp_avg_sq_fresh (float32) and lamb_state (float64[3]: lamb_coeff_freeze,
//    last_factor, scaling_coeff). fresh_step is the config's freeze_step when it is a whole number
//    >= 2 (DeepSpeed copies exp_avg_sq at state['step'] == freeze_step), else 0 (never), and the
//    master refresh. amp and OneCycle's momentum cycling are refused with it.
// Parameter groups (the config's "dscompile" section, frontend/config/parameter_groups.h): each
// update's weight_decay is its parameter's group's, and a group whose lr_scale is not 1 reads
// "dsc::lr::groupK" = Mul(dsc::lr, lr_scale) instead of dsc::lr. With groups configured, the step
// program's metadata "dsc.parameter_groups" lists each group's parameters (for dsinspect).
// Mixed precision: when P has a master copy MasterName(P) (accumulate), the update applies to the
// master, reading the accumulator cast to the master's dtype, with optimizer states in the
// regime's optimizer-state dtype; then Assign(P, Cast(master → P's dtype)) refreshes the half
// compute copy. When step has dsc::overflow, every update takes it as its skip input.
// The learning rate and step are inputs because the LR schedule runs on the host. Optimizers
// dscompile cannot run yet (mu*, the other torch.optim classes) and
// amsgrad/maximize are Unimplemented errors naming the JSON path. No optimizer section is an
// error: DeepSpeed trains only with a client optimizer then, and a plan has no client.
// A step program that already holds updates is left unchanged.
#include <algorithm>
#include <cmath>
#include <map>

#include "passes/optimizer.h"

#include "frontend/config/ds_config.h"
#include "frontend/config/parameter_groups.h"
#include "ir/dsc_ops.h"
#include "ir/optim_algorithms.h"
#include "passes/pass.h"
#include "passes/precision_policy.h"

namespace dsc {
namespace {

inline constexpr const char* kStepProgram = "step";
inline constexpr const char* kGradScale = "grad_scale";
// DeepSpeed's OneCycle replaces the optimizer's betas by (momentum, 0.99) when it cycles momentum.
inline constexpr float kOneCycleBeta2 = 0.99f;
// muon_update's ns_steps: the engine never passes another (original_muon.py:146).
inline constexpr int kMuonNsSteps = 5;

enum class Family { kAdam, kSGD, kElementwise, kLamb, kMuon, kOnebit, kZoadam, kOnebitLamb };

// The class DeepSpeed builds (OptimizerConfig::implementation) -> OptimStep's algorithm.
const char* ElementwiseAlgorithm(const std::string& implementation) {
  static const std::map<std::string, const char*> table = {
      {"FusedLion", "lion"},          {"torch.optim.Adagrad", "adagrad"}, {"torch.optim.RMSprop", "rmsprop"},
      {"torch.optim.Adamax", "adamax"}, {"torch.optim.NAdam", "nadam"},     {"torch.optim.RAdam", "radam"},
      {"torch.optim.Adadelta", "adadelta"}};
  auto it = table.find(implementation);
  return it == table.end() ? nullptr : it->second;
}

StatusOr<Family> FamilyOf(const OptimizerConfig& opt) {
  if (!opt.present())
    return FailedPrecondition("optimizer section is required to train (DeepSpeed needs a client optimizer "
                              "otherwise, which a compiled plan cannot have)");
  if (opt.amsgrad) return Unimplemented("optimizer.params.amsgrad: AMSGrad is not implemented by dscompile");
  if (opt.params.is_object() && opt.params.value("maximize", false))
    return Unimplemented("optimizer.params.maximize: maximize is not implemented by dscompile");
  if (opt.type == "adam" || opt.type == "adamw") return Family::kAdam;
  if (opt.type == "SGD") return Family::kSGD;
  if (opt.implementation == "FusedLamb") return Family::kLamb;
  if (opt.implementation == "MuonWithAuxAdam") return Family::kMuon;
  if (opt.implementation == "OnebitAdam") return Family::kOnebit;
  if (opt.implementation == "ZeroOneAdam") return Family::kZoadam;
  if (opt.implementation == "OnebitLamb") return Family::kOnebitLamb;
  if (ElementwiseAlgorithm(opt.implementation)) return Family::kElementwise;
  return Unimplemented("optimizer.type: \"", opt.type, "\" (", opt.implementation.empty() ? opt.type : opt.implementation,
                       ") is not implemented by dscompile yet; supported: Adam, AdamW, SGD, Lamb, Lion, Muon, Adagrad, and "
                       "torch.optim's RMSprop, Adamax, NAdam, RAdam, Adadelta, OneBitAdam, OneBitLamb, ZeroOneAdam");
}

// FamilyOf plus the refusals that need the rest of the config: all the pass refuses before it
// touches the module (CheckOptimizerLowerable lists them for --explain-config).
StatusOr<Family> LowerableFamily(const DsConfig& config) {
  ASSIGN_OR_RETURN(Family family, FamilyOf(config.optimizer));
  // OneCycle cycles betas only (an optimizer without them trains uncycled, as in DeepSpeed).
  const bool onebit = family == Family::kOnebit || family == Family::kZoadam || family == Family::kOnebitLamb;
  if (onebit && config.scheduler.type == "OneCycle" && config.scheduler.cycle_momentum && config.optimizer.has_betas())
    return Unimplemented("scheduler.params.cycle_momentum: OneCycle's momentum cycling with ",
                         config.optimizer.implementation, " is not implemented by dscompile; set it to false");
  if (onebit && config.amp.enabled)
    return Unimplemented("amp.enabled: apex's amp around ", config.optimizer.implementation,
                         " is not implemented by dscompile (use fp16)");
  // Every family takes a weight decay and the learning rate as an input today; an algorithm
  // without a weight_decay attribute could not give a group its own.
  if (family == Family::kElementwise && config.dscompile.has_groups()) {
    const OptimAlgorithmInfo* algo = FindOptimAlgorithm(ElementwiseAlgorithm(config.optimizer.implementation));
    bool has_wd = false;
    for (const OptimFloatAttr& a : algo->floats) has_wd = has_wd || std::string(a.name) == "weight_decay";
    if (!has_wd)
      return Unimplemented("dscompile.parameter_groups: ", config.optimizer.implementation,
                           " has no weight decay, so parameter groups cannot set one");
  }
  return family;
}

// Each parameter's weight decay and learning rate, from the group the config's "dscompile" section
// puts it in (frontend/config/parameter_groups.h), and with "muon" whether Muon updates it. A
// parameter whose lr is not the scheduled one (its group's lr_scale, the aux Adam's ratio) reads
// a Mul(dsc::lr, factor) shared by every update of that factor, so the host-side schedule stays
// one scalar.
struct ParamHyper {
  float weight_decay;
  Value* lr;
  bool use_muon;
  size_t group;  // its parameter group's index
};

// The schedulers whose DeepSpeed implementation writes one absolute lr into every param group
// (lr_schedules.py: WarmupLR and WarmupDecayLR's min/max lrs, OneCycle's, LRRangeTest's);
// WarmupCosineLR scales each group's own lr, as a constant lr keeps it.
bool SchedulerEqualizesGroups(const std::string& type) {
  return type == "WarmupLR" || type == "WarmupDecayLR" || type == "OneCycle" || type == "LRRangeTest";
}

StatusOr<std::vector<ParamHyper>> ChooseParamHypers(Graph& g, const DsConfig& config, const std::vector<StateInfo>& params,
                                                     Value* lr, Node* before) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (const StateInfo& p : params) shapes.emplace_back(p.name, p.dims);
  ASSIGN_OR_RETURN(ParameterGroupAssignment a, AssignParameterGroups(config.dscompile, config.optimizer, config.source, shapes));
  const bool muon = config.optimizer.implementation == "MuonWithAuxAdam";
  const double adam_ratio = muon && !SchedulerEqualizesGroups(config.scheduler.type) && config.optimizer.muon_lr != 0
                                ? config.optimizer.adam_lr / config.optimizer.muon_lr
                                : 1.0;
  if (muon && config.optimizer.muon_lr == 0 && config.optimizer.adam_lr != 0 && !SchedulerEqualizesGroups(config.scheduler.type))
    return Unimplemented("optimizer.params.muon_lr: 0 with a nonzero adam_lr: the aux Adam's lr is a multiple of the "
                         "Muon group's scheduled lr in dscompile");
  // lr values by (group, aux Adam): made once each, named as before for plain groups.
  std::map<std::pair<size_t, bool>, Value*> made;
  auto lr_of = [&](size_t i, bool adam) {
    auto it = made.find({i, adam});
    if (it != made.end()) return it->second;
    const double factor = a.groups[i].lr_scale * (adam ? adam_ratio : 1.0);
    Value* v = lr;
    if (factor != 1.0) {
      const std::string sfx = adam ? "::adam" : "";
      Value* scale = g.AddInitializer(g.UniqueName(StrCat(ops::kLrInput, "::scale", i, sfx)),
                                      Tensor::Scalar(DType::kFloat32, static_cast<float>(factor)));
      Node* mul = g.AddNode("Mul", {lr, scale}, {g.UniqueName(StrCat(ops::kLrInput, "::group", i, sfx))}, "", "", before);
      mul->output(0)->type = lr->type;
      v = mul->output(0);
    }
    made[{i, adam}] = v;
    return v;
  };
  std::vector<ParamHyper> out;
  for (size_t k = 0; k < params.size(); ++k) {
    const size_t group = static_cast<size_t>(a.group_of[k]);
    const ParameterGroup& gr = a.groups[group];
    const bool use_muon = muon && gr.use_muon.value_or(UsesMuonByDefault(params[k].name, params[k].dims));
    if (use_muon && params[k].dims.size() < 2)
      return InvalidArgument(kDscompileSection, ".", gr.name, ".use_muon: parameter '", params[k].name, "' has ",
                             params[k].dims.size(), " dimension(s); Muon orthogonalises matrices (2 or more)");
    out.push_back({static_cast<float>(gr.weight_decay), lr_of(group, muon && !use_muon), use_muon, group});
  }
  // Recorded only when groups are configured, so plans without them are unchanged (dsinspect
  // shows every parameter in "default" then).
  if (config.dscompile.has_groups()) g.metadata[kParameterGroupsMetadata] = ParameterGroupsJson(a, shapes).dump();
  return out;
}

// An OptimStep attribute's value from the optimizer section (ir/optim_algorithms.h's names).
float ElementwiseAttr(const OptimizerConfig& opt, const std::string& attr) {
  if (attr == "beta1") return static_cast<float>(opt.betas[0]);
  if (attr == "beta2") return static_cast<float>(opt.betas[1]);
  if (attr == "epsilon") return static_cast<float>(opt.eps);
  if (attr == "weight_decay") return static_cast<float>(opt.weight_decay);
  if (attr == "lr_decay") return static_cast<float>(opt.lr_decay);
  if (attr == "initial_accumulator_value") return static_cast<float>(opt.initial_accumulator_value);
  if (attr == "alpha") return static_cast<float>(opt.alpha);
  if (attr == "momentum") return static_cast<float>(opt.momentum);
  if (attr == "momentum_decay") return static_cast<float>(opt.momentum_decay);
  if (attr == "rho") return static_cast<float>(opt.rho);
  return 0.0f;
}
bool ElementwiseFlag(const OptimizerConfig& opt, const std::string& flag) {
  if (flag == "centered") return opt.centered;
  if (flag == "decoupled_weight_decay") return opt.decoupled_weight_decay;
  return false;
}

// Lamb's attributes shared by LambMoments and LambApply; weight_decay is the parameter's group's.
// `cycled`: OneCycle feeds beta1 and sets beta2 to 0.99.
void SetLambAttrs(Node* n, const OptimizerConfig& opt, float weight_decay, bool cycled) {
  n->SetAttr("beta1", static_cast<float>(opt.betas[0]));
  n->SetAttr("beta2", cycled ? kOneCycleBeta2 : static_cast<float>(opt.betas[1]));
  n->SetAttr("epsilon", static_cast<float>(opt.eps));
  n->SetAttr("eps_inside_sqrt", int64_t{opt.eps_inside_sqrt});
  n->SetAttr("weight_decay", weight_decay);
}

// One parameter's Lamb update: its LambMoments node (added in the parameter loop), and what its
// LambApply needs once every parameter's sums exist.
struct LambParam {
  Node* moments;
  Value* target;  // the parameter or its master
  Value* param;   // the parameter (refreshed from the master when there is one)
  Value* master;
  float weight_decay;  // the parameter's group's
  Value* lr;           // dsc::lr, or its group's scaled copy
};

// lamb_sums = Concat(each parameter's sums), then each parameter's LambApply and master refresh,
// all before `before`. `cast` makes a value of a dtype (the master refresh's Cast).
template <typename Cast>
void AddLambApplies(Graph& g, const OptimizerConfig& opt, const std::vector<LambParam>& lamb, Value* step, Value* skip,
                    Value* beta1, Node* before, Cast cast) {
  if (lamb.empty()) return;
  std::vector<Value*> parts;
  for (const LambParam& l : lamb) parts.push_back(l.moments->output(0));
  Node* concat = g.AddNode("Concat", parts, {g.UniqueName("lamb_sums")}, "", "", before);
  concat->SetAttr("axis", int64_t{0});
  Value* sums = concat->output(0);
  sums->type = TensorType{DType::kFloat32, Shape{Dim::Static(2 * static_cast<int64_t>(lamb.size()))}};
  for (size_t i = 0; i < lamb.size(); ++i) {
    const LambParam& l = lamb[i];
    std::vector<Value*> in = {l.target, sums, l.moments->input(2), l.moments->input(3), l.lr, step};
    if (skip || beta1) in.push_back(skip);
    if (beta1) in.push_back(beta1);
    Node* n = g.AddNode(ops::kLambApply, in, {}, kDscDomain, "", before);
    SetLambAttrs(n, opt, l.weight_decay, beta1 != nullptr);
    n->SetAttr("bias_correction", int64_t{opt.bias_correction});
    n->SetAttr("max_coeff", static_cast<float>(opt.max_coeff));
    n->SetAttr("min_coeff", static_cast<float>(opt.min_coeff));
    n->SetAttr("slot", static_cast<int64_t>(i));
    if (l.master) g.AddNode(ops::kAssign, {l.param, cast(l.master, l.param->type.dtype)}, {}, kDscDomain, "", before);
  }
}

// One parameter's 1-bit Adam update: its states, and what its OnebitAdamStep needs.
struct OnebitParam {
  const StateInfo* info;
  Value* target;  // the parameter or its master
  Value* param;
  Value* master;
  Value* grad;    // the accumulator in the target's dtype
  Value* exp_avg;
  Value* exp_avg_sq;
  ParamHyper hyper;
};

// Every parameter's OnebitMomentum, the CompressedAllReduce of each unit (a parameter, or with
// masters a parameter group), then every OnebitAdamStep and master refresh, before `before`.
// `add_error` makes a compression_error state of float[size].
// Compression units in parameter order: one per parameter, or one per group with masters (named
// by its owner: the parameter, or dsc::onebit_groupK).
using CompressionUnits = std::vector<std::pair<std::string, std::vector<const OnebitParam*>>>;
CompressionUnits UnitsOf(const std::vector<OnebitParam>& params) {
  CompressionUnits units;
  std::map<size_t, size_t> unit_of_group;
  for (const OnebitParam& p : params) {
    if (!p.master) {
      units.push_back({p.info->name, {&p}});
      continue;
    }
    auto [it, fresh] = unit_of_group.emplace(p.hyper.group, units.size());
    if (fresh) units.push_back({StrCat("dsc::onebit_group", p.hyper.group), {}});
    units[it->second].second.push_back(&p);
  }
  return units;
}

// A unit's compression errors, worker_error then server_error, sized for CompressedAllReduce.
template <typename AddError>
StatusOr<std::pair<Value*, Value*>> UnitErrors(const std::string& owner, const std::vector<const OnebitParam*>& members,
                                               int world, AddError add_error) {
  int64_t n = 0;
  for (const OnebitParam* p : members) {
    ASSIGN_OR_RETURN(int64_t numel, NumElements(p->info->dims));
    n += numel;
  }
  const int64_t size = ops::CompressedAllReduceSize(n, world);
  ASSIGN_OR_RETURN(Value * worker, add_error(owner, "::worker_error", DType::kFloat32, std::vector<int64_t>{size}));
  ASSIGN_OR_RETURN(Value * server, add_error(owner, "::server_error", DType::kFloat32, std::vector<int64_t>{size / world}));
  return std::make_pair(worker, server);
}

template <typename AddError, typename Cast>
Status AddOnebitUpdates(Graph& g, const OptimizerConfig& opt, const std::vector<OnebitParam>& params, int world,
                        Value* step, Value* scale, Value* skip, Node* before, AddError add_error, Cast cast) {
  const int64_t freeze = opt.onebit_last_uncompressed_step();
  for (const OnebitParam& p : params) {
    std::vector<Value*> in = {p.target, p.grad, p.exp_avg, step, scale};
    if (skip) in.push_back(skip);
    Node* n = g.AddNode(ops::kOnebitMomentum, in, {}, kDscDomain, "", before);
    n->SetAttr("beta1", static_cast<float>(opt.betas[0]));
    n->SetAttr("freeze_step", freeze);
  }
  if (world > 1) {
    for (const auto& [owner, members] : UnitsOf(params)) {
      ASSIGN_OR_RETURN(auto errors, UnitErrors(owner, members, world, add_error));
      std::vector<Value*> in = {errors.first, errors.second, step, skip};
      for (const OnebitParam* p : members) in.push_back(p->exp_avg);
      Node* c = g.AddNode(ops::kCompressedAllReduce, in, {}, kDscDomain, "", before);
      c->SetAttr("world", static_cast<int64_t>(world));
      c->SetAttr("freeze_step", freeze);
    }
  }
  for (const OnebitParam& p : params) {
    std::vector<Value*> in = {p.target, p.grad, p.exp_avg, p.exp_avg_sq, p.hyper.lr, step, scale};
    if (skip) in.push_back(skip);
    Node* n = g.AddNode(ops::kOnebitAdamStep, in, {}, kDscDomain, "", before);
    n->SetAttr("beta1", static_cast<float>(opt.betas[0]));
    n->SetAttr("beta2", static_cast<float>(opt.betas[1]));
    n->SetAttr("epsilon", static_cast<float>(opt.eps));
    n->SetAttr("weight_decay", p.hyper.weight_decay);
    n->SetAttr("freeze_step", freeze);
    if (p.master) g.AddNode(ops::kAssign, {p.param, cast(p.master, p.param->type.dtype)}, {}, kDscDomain, "", before);
  }
  return Status::OK();
}

// 0/1 Adam's schedule attributes (ir/dsc_ops.h), on each of its nodes.
void SetZoadamSchedule(Node* n, const OptimizerConfig& opt, int world) {
  n->SetAttr("last_var_step", opt.zoadam_last_variance_step());
  n->SetAttr("var_update_scaler", opt.var_update_scaler);
  n->SetAttr("local_step_scaler", opt.local_step_scaler);
  n->SetAttr("local_step_clipper", opt.local_step_clipper);
  n->SetAttr("world", static_cast<int64_t>(world));
}

// Every parameter's ZoadamStep; each unit's ZoadamPhase and CompressedAllReduce of the momentum
// accumulators (more than one rank); every ZoadamApply and master refresh; all before `before`.
// The accumulators, lrs and errors are the rank's own (`add_error`: kind compression_error).
template <typename AddError, typename Cast>
Status AddZoadamUpdates(Graph& g, const OptimizerConfig& opt, const std::vector<OnebitParam>& params, int world,
                        Value* step, Value* scale, Value* skip, Node* before, AddError add_error, Cast cast) {
  std::map<const OnebitParam*, std::pair<Value*, Value*>> rank_states;  // accumulator, lrs
  for (const OnebitParam& p : params) {
    ASSIGN_OR_RETURN(int64_t numel, NumElements(p.info->dims));
    ASSIGN_OR_RETURN(Value * u, add_error(p.info->name, "::momentum_accumulator", DType::kFloat32,
                                          std::vector<int64_t>{numel}));
    ASSIGN_OR_RETURN(Value * lrs, add_error(p.info->name, "::lrs", DType::kFloat64, std::vector<int64_t>{1}));
    rank_states[&p] = {u, lrs};
    std::vector<Value*> in = {p.target, p.grad, p.exp_avg, p.exp_avg_sq, u, lrs, p.hyper.lr, step, scale};
    if (skip) in.push_back(skip);
    Node* n = g.AddNode(ops::kZoadamStep, in, {}, kDscDomain, "", before);
    n->SetAttr("beta1", static_cast<float>(opt.betas[0]));
    n->SetAttr("beta2", static_cast<float>(opt.betas[1]));
    n->SetAttr("epsilon", static_cast<float>(opt.eps));
    n->SetAttr("weight_decay", p.hyper.weight_decay);
    SetZoadamSchedule(n, opt, world);
  }
  if (world > 1) {
    for (const auto& [owner, members] : UnitsOf(params)) {
      ASSIGN_OR_RETURN(auto errors, UnitErrors(owner, members, world, add_error));
      std::vector<Value*> phase_in = {errors.first, errors.second, step};
      if (skip) phase_in.push_back(skip);
      Node* phase = g.AddNode(ops::kZoadamPhase, phase_in, {g.UniqueName(owner + "@compress_skip")}, kDscDomain, "",
                              before);
      phase->output(0)->type = TensorType{DType::kBool, Shape{}};
      SetZoadamSchedule(phase, opt, world);
      std::vector<Value*> in = {errors.first, errors.second, step, phase->output(0)};
      for (const OnebitParam* p : members) in.push_back(rank_states[p].first);
      Node* c = g.AddNode(ops::kCompressedAllReduce, in, {}, kDscDomain, "", before);
      c->SetAttr("world", static_cast<int64_t>(world));
      c->SetAttr("freeze_step", int64_t{2});  // ZoadamPhase's skip says when
    }
  }
  for (const OnebitParam& p : params) {
    std::vector<Value*> in = {p.target, rank_states[&p].first, p.exp_avg, p.exp_avg_sq, rank_states[&p].second,
                              p.hyper.lr, step};
    if (skip) in.push_back(skip);
    Node* n = g.AddNode(ops::kZoadamApply, in, {}, kDscDomain, "", before);
    n->SetAttr("beta1", static_cast<float>(opt.betas[0]));
    n->SetAttr("epsilon", static_cast<float>(opt.eps));
    n->SetAttr("weight_decay", p.hyper.weight_decay);
    SetZoadamSchedule(n, opt, world);
    if (p.master) g.AddNode(ops::kAssign, {p.param, cast(p.master, p.param->type.dtype)}, {}, kDscDomain, "", before);
  }
  return Status::OK();
}

// One parameter's 1-bit Lamb update: its states (exp_avg_sq etc. in OnebitParam) and the ones only
// 1-bit Lamb keeps.
struct OnebitLambParam {
  OnebitParam base;
  Value* exp_avg_sq_fresh;
  Value* lamb_state;
};

// Every parameter's OnebitLambSnapshot, the Concat of their momentum scales, every
// OnebitLambMomentum, ONE CompressedAllReduce of every momentum, then every OnebitLambStep,
// before `before`. `add_error` makes a compression_error state. The parameters go in DeepSpeed's
// order, its param groups one after another (our groups' order: the explicit ones, the no-decay
// preset, the default): the order of the flat compressed buffer and of the scales' mean.
template <typename AddError, typename Cast>
Status AddOnebitLambUpdates(Graph& g, const OptimizerConfig& opt, std::vector<OnebitLambParam> params,
                            int world, Value* step, Value* scale, Value* skip, Node* before, AddError add_error,
                            Cast cast) {
  std::stable_sort(params.begin(), params.end(), [](const OnebitLambParam& a, const OnebitLambParam& b) {
    return a.base.hyper.group < b.base.hyper.group;
  });
  const int64_t freeze = opt.onebit_last_uncompressed_step();
  const int64_t fresh_step =
      opt.freeze_step >= 2 && std::floor(opt.freeze_step) == opt.freeze_step ? static_cast<int64_t>(opt.freeze_step) : 0;
  std::vector<Value*> lasts, scales;
  for (const OnebitLambParam& q : params) {
    const OnebitParam& p = q.base;
    std::vector<Value*> in = {p.exp_avg, q.lamb_state, step};
    if (skip) in.push_back(skip);
    Node* n = g.AddNode(ops::kOnebitLambSnapshot, in,
                        {g.UniqueName(p.info->name + "@exp_avg_last"), g.UniqueName(p.info->name + "@momentum_scale")},
                        kDscDomain, "", before);
    n->output(0)->type = p.exp_avg->type;
    n->output(1)->type = TensorType{DType::kFloat32, Shape{Dim::Static(1)}};
    n->SetAttr("freeze_step", freeze);
    lasts.push_back(n->output(0));
    scales.push_back(n->output(1));
  }
  Node* concat = g.AddNode("Concat", scales, {g.UniqueName("onebit_lamb_scales")}, "", "", before);
  concat->SetAttr("axis", int64_t{0});
  Value* all_scales = concat->output(0);
  all_scales->type = TensorType{DType::kFloat32, Shape{Dim::Static(static_cast<int64_t>(params.size()))}};
  int64_t total = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const OnebitParam& p = params[i].base;
    std::vector<Value*> in = {p.target, p.grad, p.exp_avg, params[i].lamb_state, all_scales, step, scale};
    if (skip) in.push_back(skip);
    Node* n = g.AddNode(ops::kOnebitLambMomentum, in, {}, kDscDomain, "", before);
    n->SetAttr("beta1", static_cast<float>(opt.betas[0]));
    n->SetAttr("freeze_step", freeze);
    n->SetAttr("slot", static_cast<int64_t>(i));
    ASSIGN_OR_RETURN(int64_t numel, NumElements(p.info->dims));
    total += numel;
  }
  if (world > 1) {
    const int64_t size = ops::CompressedAllReduceSize(total, world);
    ASSIGN_OR_RETURN(Value * worker, add_error("dsc::onebit_lamb", "::worker_error", DType::kFloat32,
                                               std::vector<int64_t>{size}));
    ASSIGN_OR_RETURN(Value * server, add_error("dsc::onebit_lamb", "::server_error", DType::kFloat32,
                                               std::vector<int64_t>{size / world}));
    std::vector<Value*> in = {worker, server, step, skip};
    for (const OnebitLambParam& q : params) in.push_back(q.base.exp_avg);
    Node* c = g.AddNode(ops::kCompressedAllReduce, in, {}, kDscDomain, "", before);
    c->SetAttr("world", static_cast<int64_t>(world));
    c->SetAttr("freeze_step", freeze);
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const OnebitParam& p = params[i].base;
    std::vector<Value*> in = {p.target, p.grad, p.exp_avg, p.exp_avg_sq, params[i].exp_avg_sq_fresh,
                              params[i].lamb_state, lasts[i], p.hyper.lr, step, scale};
    if (skip) in.push_back(skip);
    Node* n = g.AddNode(ops::kOnebitLambStep, in, {}, kDscDomain, "", before);
    n->SetAttr("beta1", static_cast<float>(opt.betas[0]));
    n->SetAttr("beta2", static_cast<float>(opt.betas[1]));
    n->SetAttr("epsilon", static_cast<float>(opt.eps));
    n->SetAttr("weight_decay", p.hyper.weight_decay);
    n->SetAttr("max_coeff", static_cast<float>(opt.max_coeff));
    n->SetAttr("min_coeff", static_cast<float>(opt.min_coeff));
    n->SetAttr("coeff_beta", static_cast<float>(opt.coeff_beta));
    n->SetAttr("factor_max", static_cast<float>(opt.factor_max));
    n->SetAttr("factor_min", static_cast<float>(opt.factor_min));
    n->SetAttr("factor_threshold", static_cast<float>(opt.factor_threshold));
    n->SetAttr("freeze_step", freeze);
    n->SetAttr("fresh_step", fresh_step);
    if (p.master) g.AddNode(ops::kAssign, {p.param, cast(p.master, p.param->type.dtype)}, {}, kDscDomain, "", before);
  }
  return Status::OK();
}

TensorType TypeOf(const StateInfo& s) {
  Shape shape;
  for (int64_t d : s.dims) shape.push_back(Dim::Static(d));
  return TensorType{s.dtype, shape};
}

class OptimizerPass : public Pass {
 public:
  const char* name() const override { return "optimizer"; }

  StatusOr<bool> Run(Module& m, const PassContext& ctx) override {
    if (!ctx.config) return FailedPrecondition("optimizer needs the DeepSpeed config");
    const OptimizerConfig& opt = ctx.config->optimizer;
    ASSIGN_OR_RETURN(Family family, LowerableFamily(*ctx.config));
    PlanProgram* program = m.FindProgram(kStepProgram);
    if (!program) return FailedPrecondition("optimizer needs the \"step\" program (run accumulate first)");
    Graph& g = *program->graph;
    for (const auto& n : g.nodes())
      if (ops::IsOptimizerUpdate(n->domain(), n->op_type())) return false;

    // Check the inputs accumulate promised before touching anything.
    Value* lr = g.FindValue(ops::kLrInput);
    Value* step = g.FindValue(ops::kStepInput);
    Value* scale = g.FindValue(kGradScale);
    if (!lr || !step || !scale)
      return FailedPrecondition("the step program lacks ", ops::kLrInput, ", ", ops::kStepInput, " or ", kGradScale);
    Node* zero_fill = nullptr;
    for (const auto& n : g.nodes())
      if (n->domain() == kDscDomain && n->op_type() == ops::kZeroFill) {
        zero_fill = n.get();
        break;
      }
    std::vector<StateInfo> params;  // copies: adding optimizer states grows m.state
    for (const StateInfo& s : m.state) {
      if (s.kind != StateKind::kParameter) continue;
      if (!g.FindValue(s.name) || !g.FindValue(ops::GradAccName(s.name)))
        return FailedPrecondition("the step program lacks parameter '", s.name, "' or its accumulator");
      params.push_back(s);
    }
    // has_betas: what DeepSpeed's OneCycle checks (MuonWithAuxAdam has none in its defaults).
    const bool cycle_momentum = ctx.config->scheduler.type == "OneCycle" && ctx.config->scheduler.cycle_momentum &&
                                opt.has_betas();
    if (cycle_momentum && g.FindValue(ops::kBeta1Input))
      return FailedPrecondition("the step program already has an input ", ops::kBeta1Input);

    // First, as it can fail (a pattern that matches nothing) before the module changes.
    ASSIGN_OR_RETURN(std::vector<ParamHyper> hypers, ChooseParamHypers(g, *ctx.config, params, lr, zero_fill));
    g.opsets[kDscDomain] = 1;
    Value* beta1 = cycle_momentum ? g.AddInput(ops::kBeta1Input, TensorType{DType::kFloat32, Shape{}}) : nullptr;
    PrecisionMode mode;
    if (g.metadata.count("dsc.precision")) {
      ASSIGN_OR_RETURN(mode, ResolvePrecision(*ctx.config));
    }
    Value* skip = g.FindValue(ops::kOverflowOutput);
    DType state_dtype = DType::kFloat32;
    auto add_state = [&](const StateInfo& p, const std::string& name) -> StatusOr<Value*> {
      StateInfo st{name, StateKind::kOptimizer, p.name, state_dtype, p.dims};
      RETURN_IF_ERROR(m.AddState(st, nullptr));
      return g.AddInput(name, TypeOf(st));
    };
    auto cast = [&](Value* v, DType to) {
      return v->type.dtype == to ? v : g.AddCast(v, to, StrCat(v->name(), "::", DTypeName(to)), "", zero_fill);
    };
    std::vector<LambParam> lamb;
    std::vector<OnebitParam> onebit;
    std::vector<OnebitLambParam> onebit_lamb;
    for (size_t k = 0; k < params.size(); ++k) {
      const StateInfo& p = params[k];
      const ParamHyper& hyper = hypers[k];
      Value* param = g.FindValue(p.name);
      Value* master = g.FindValue(ops::MasterName(p.name));
      Value* target = master ? master : param;
      state_dtype = master ? mode.optimizer_state_dtype : p.dtype;
      Value* grad = cast(g.FindValue(ops::GradAccName(p.name)), target->type.dtype);
      Node* n = nullptr;
      if (family == Family::kMuon && hyper.use_muon) {
        ASSIGN_OR_RETURN(Value * buf, add_state(p, ops::MomentumName(p.name)));
        std::vector<Value*> in = {target, grad, buf, scale};
        if (skip) in.push_back(skip);
        Node* momentum = g.AddNode(ops::kMuonMomentum, in, {g.UniqueName(p.name + "@muon_update")}, kDscDomain, "", zero_fill);
        momentum->output(0)->type = TensorType{DType::kFloat32, TypeOf(p).shape};
        momentum->SetAttr("momentum", static_cast<float>(opt.momentum));
        std::vector<Value*> apply_in = {target, momentum->output(0), hyper.lr};
        if (skip) apply_in.push_back(skip);
        n = g.AddNode(ops::kMuonApply, apply_in, {}, kDscDomain, "", zero_fill);
        n->SetAttr("ns_method", opt.ns_method);
        n->SetAttr("ns_steps", int64_t{kMuonNsSteps});
        n->SetAttr("weight_decay", hyper.weight_decay);
      } else if (family == Family::kAdam || family == Family::kMuon) {
        ASSIGN_OR_RETURN(Value * m1, add_state(p, ops::ExpAvgName(p.name)));
        ASSIGN_OR_RETURN(Value * m2, add_state(p, ops::ExpAvgSqName(p.name)));
        std::vector<Value*> in = {target, grad, m1, m2, hyper.lr, step, scale};
        if (beta1 || skip) in.push_back(beta1);
        if (skip) in.push_back(skip);
        n = g.AddNode(ops::kAdamStep, in, {}, kDscDomain, "", zero_fill);
        n->SetAttr("beta1", static_cast<float>(opt.betas[0]));
        n->SetAttr("beta2", cycle_momentum ? kOneCycleBeta2 : static_cast<float>(opt.betas[1]));
        n->SetAttr("epsilon", static_cast<float>(opt.eps));
        n->SetAttr("weight_decay", hyper.weight_decay);
        n->SetAttr("adam_w_mode", int64_t{opt.adam_w_mode});
        n->SetAttr("bias_correction", int64_t{opt.bias_correction});
      } else if (family == Family::kElementwise) {
        const OptimAlgorithmInfo* algo = FindOptimAlgorithm(ElementwiseAlgorithm(opt.implementation));
        const std::vector<std::string> suffixes =
            OptimStateSuffixes(algo->id, opt.momentum != 0, opt.centered);
        std::vector<Value*> in = {target, grad};
        for (const std::string& suffix : suffixes) {
          ASSIGN_OR_RETURN(Value * st, add_state(p, p.name + "::" + suffix));
          in.push_back(st);
        }
        in.insert(in.end(), {hyper.lr, step, scale});
        if (skip || beta1) in.push_back(skip);
        if (beta1) in.push_back(beta1);
        if (OptimTakesMuProduct(algo->id, beta1 != nullptr)) {
          // torch's per-parameter scalar, float32 whatever the states' dtype; ZeRO keeps it whole.
          const StateInfo st{p.name + "::" + kNadamMuProductSuffix, StateKind::kOptimizer, p.name, DType::kFloat32, {}};
          const Tensor one = Tensor::Scalar(DType::kFloat32, 1.0);
          RETURN_IF_ERROR(m.AddState(st, &one));
          in.insert(in.end(), {nullptr, g.AddInput(st.name, TypeOf(st))});  // param_copy absent
        }
        n = g.AddNode(ops::kOptimStep, in, {}, kDscDomain, "", zero_fill);
        n->SetAttr("algorithm", std::string(algo->name));
        for (const OptimFloatAttr& a : algo->floats)
          n->SetAttr(a.name, std::string(a.name) == "weight_decay" ? hyper.weight_decay
                             : std::string(a.name) == "beta2" && beta1 ? kOneCycleBeta2
                                                                        : ElementwiseAttr(opt, a.name));
        for (const char* f : algo->flags) n->SetAttr(f, int64_t{ElementwiseFlag(opt, f)});
      } else if (family == Family::kOnebit || family == Family::kZoadam) {
        if (target->type.dtype != DType::kFloat32 || state_dtype != DType::kFloat32)
          return Unimplemented("optimizer.type: ", opt.implementation, " updates float32 parameters or masters with float32 states; '",
                               p.name, "' has ", DTypeName(target->type.dtype), " and ", DTypeName(state_dtype));
        ASSIGN_OR_RETURN(Value * m1, add_state(p, ops::ExpAvgName(p.name)));
        ASSIGN_OR_RETURN(Value * m2, add_state(p, ops::ExpAvgSqName(p.name)));
        onebit.push_back(OnebitParam{&params[k], target, param, master, grad, m1, m2, hyper});
        continue;  // the compressed all-reduce goes between every momentum and every update
      } else if (family == Family::kOnebitLamb) {
        if (target->type.dtype != DType::kFloat32 || state_dtype != DType::kFloat32)
          return Unimplemented("optimizer.type: OneBitLamb updates float32 parameters or masters with float32 states; '",
                               p.name, "' has ", DTypeName(target->type.dtype), " and ", DTypeName(state_dtype));
        ASSIGN_OR_RETURN(Value * m1, add_state(p, ops::ExpAvgName(p.name)));
        ASSIGN_OR_RETURN(Value * m2, add_state(p, ops::ExpAvgSqName(p.name)));
        ASSIGN_OR_RETURN(Value * fresh, add_state(p, p.name + "::exp_avg_sq_fresh"));
        // DeepSpeed's per-tensor Python floats (lamb_coeff_freeze, last_factor, scaling_coeff).
        StateInfo scalars{p.name + "::lamb_state", StateKind::kOptimizer, p.name, DType::kFloat64, {3}};
        RETURN_IF_ERROR(m.AddState(scalars, nullptr));
        Value* lamb_state = g.AddInput(scalars.name, TypeOf(scalars));
        onebit_lamb.push_back(OnebitLambParam{OnebitParam{&params[k], target, param, master, grad, m1, m2, hyper},
                                              fresh, lamb_state});
        continue;  // one compressed all-reduce of every momentum goes between the momenta and the updates
      } else if (family == Family::kLamb) {
        ASSIGN_OR_RETURN(Value * m1, add_state(p, ops::ExpAvgName(p.name)));
        ASSIGN_OR_RETURN(Value * m2, add_state(p, ops::ExpAvgSqName(p.name)));
        std::vector<Value*> in = {target, grad, m1, m2, scale};
        if (skip || beta1) in.push_back(skip);
        if (beta1) in.push_back(beta1);
        n = g.AddNode(ops::kLambMoments, in, {g.UniqueName(p.name + "@lamb_sums")}, kDscDomain, "", zero_fill);
        n->output(0)->type = TensorType{DType::kFloat32, Shape{Dim::Static(2)}};
        SetLambAttrs(n, opt, hyper.weight_decay, beta1 != nullptr);
        lamb.push_back(LambParam{n, target, param, master, hyper.weight_decay, hyper.lr});
        continue;  // LambApply and the master refresh follow every parameter's sums
      } else {
        Value* buf = nullptr;
        if (opt.momentum != 0) {
          ASSIGN_OR_RETURN(buf, add_state(p, ops::MomentumName(p.name)));
        }
        std::vector<Value*> in = {target, grad, buf, hyper.lr, step, scale};
        if (skip) in.push_back(skip);
        n = g.AddNode(ops::kSGDStep, in, {}, kDscDomain, "", zero_fill);
        n->SetAttr("momentum", static_cast<float>(opt.momentum));
        n->SetAttr("dampening", static_cast<float>(opt.dampening));
        n->SetAttr("nesterov", int64_t{opt.nesterov});
        n->SetAttr("weight_decay", hyper.weight_decay);
      }
      if (master) g.AddNode(ops::kAssign, {param, cast(master, param->type.dtype)}, {}, kDscDomain, "", zero_fill);
    }
    AddLambApplies(g, opt, lamb, step, skip, beta1, zero_fill, cast);
    auto add_error = [&](const std::string& owner, const char* suffix, DType dtype,
                         std::vector<int64_t> dims) -> StatusOr<Value*> {
      StateInfo st{owner + suffix, StateKind::kCompressionError, owner.rfind("dsc::", 0) == 0 ? "" : owner, dtype,
                   std::move(dims)};
      RETURN_IF_ERROR(m.AddState(st, nullptr));
      return g.AddInput(st.name, TypeOf(st));
    };
    // The 1-bit nodes count the optimizer's calls: under DeepSpeed's fp16/bf16 wrapper its
    // constructor made the first (OnebitCallsBeforeTraining), so they read dsc::step + 1.
    Value* calls = step;
    if (!onebit.empty() || !onebit_lamb.empty())
      if (const int64_t before = OnebitCallsBeforeTraining(*ctx.config)) {
        Value* offset = g.AddInitializer(g.UniqueName(StrCat(ops::kStepInput, "::calls_before_training")),
                                         Tensor::Scalar(DType::kInt64, static_cast<double>(before)));
        Node* add = g.AddNode("Add", {step, offset}, {g.UniqueName(StrCat(ops::kStepInput, "::optimizer_call"))}, "", "",
                              zero_fill);
        add->output(0)->type = step->type;
        calls = add->output(0);
      }
    if (!onebit.empty() && family == Family::kZoadam)
      RETURN_IF_ERROR(AddZoadamUpdates(g, opt, onebit, ctx.world_size, calls, scale, skip, zero_fill, add_error, cast));
    else if (!onebit.empty())
      RETURN_IF_ERROR(AddOnebitUpdates(g, opt, onebit, ctx.world_size, calls, scale, skip, zero_fill, add_error, cast));
    if (!onebit_lamb.empty())
      RETURN_IF_ERROR(AddOnebitLambUpdates(g, opt, onebit_lamb, ctx.world_size, calls, scale, skip, zero_fill, add_error,
                                           cast));
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateOptimizerPass() { return std::make_unique<OptimizerPass>(); }

Status CheckOptimizerLowerable(const DsConfig& config) { return LowerableFamily(config).status(); }

}  // namespace dsc
