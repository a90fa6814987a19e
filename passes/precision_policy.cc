// The precision regime from the config, and the one table of per-op precision.
#include "passes/precision_policy.h"

#include <map>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"

namespace dsc {
namespace {

struct OpRow {
  OpPrecision half_model;  // fp16/bf16, amp O2/O3
  OpPrecision autocast;    // amp O1
  const char* why;
};

constexpr OpPrecision kFollow = OpPrecision::kFollow;
constexpr OpPrecision kHalf = OpPrecision::kHalf;
constexpr OpPrecision kFp32 = OpPrecision::kFp32;

// The policy, written once. GEMM-like ops run in half in every regime (torch.autocast's lower-
// precision list). Losses and reductions always compute in fp32 (its fp32 list; DeepSpeed's
// engine casts the loss to fp32 before scaling it). Under autocast softmax, the norms and the
// transcendental functions also run in fp32; in a half model they run in half, as model.half()
// does, with fp32 statistics inside the kernel. Every op not listed follows its inputs.
const std::map<std::string, OpRow>& Table() {
  static const std::map<std::string, OpRow> table = {
      {"MatMul", {kHalf, kHalf, "GEMM: half list"}},
      {"Gemm", {kHalf, kHalf, "GEMM: half list"}},
      {"Conv", {kHalf, kHalf, "convolution: half list"}},
      {"ConvTranspose", {kHalf, kHalf, "convolution: half list"}},
      {"Einsum", {kHalf, kHalf, "GEMM: half list"}},
      {"Attention", {kHalf, kHalf, "attention GEMMs: half list"}},
      {"SoftmaxCrossEntropyLoss", {kFp32, kFp32, "loss: fp32 list"}},
      {"NegativeLogLikelihoodLoss", {kFp32, kFp32, "loss: fp32 list"}},
      {"ReduceSum", {kFp32, kFp32, "reduction: fp32 list"}},
      {"ReduceMean", {kFp32, kFp32, "reduction: fp32 list"}},
      {"ReduceSumSquare", {kFp32, kFp32, "reduction: fp32 list"}},
      {"ReduceL1", {kFp32, kFp32, "reduction: fp32 list"}},
      {"ReduceL2", {kFp32, kFp32, "reduction: fp32 list"}},
      {"ReduceLogSum", {kFp32, kFp32, "reduction: fp32 list"}},
      {"ReduceLogSumExp", {kFp32, kFp32, "reduction: fp32 list"}},
      {"ReduceProd", {kFp32, kFp32, "reduction: fp32 list"}},
      {"CumSum", {kFp32, kFp32, "reduction: fp32 list"}},
      {"Softmax", {kFollow, kFp32, "softmax: fp32 list under autocast"}},
      {"LogSoftmax", {kFollow, kFp32, "log-softmax: fp32 list under autocast"}},
      {"LayerNormalization", {kFollow, kFp32, "normalization: fp32 list under autocast"}},
      {"GroupNormalization", {kFollow, kFp32, "normalization: fp32 list under autocast"}},
      {"RMSNormalization", {kFollow, kFp32, "normalization: fp32 list under autocast"}},
      {"Exp", {kFollow, kFp32, "exp: fp32 list under autocast"}},
      {"Log", {kFollow, kFp32, "log: fp32 list under autocast"}},
      {"Pow", {kFollow, kFp32, "pow: fp32 list under autocast"}},
      {"Reciprocal", {kFollow, kFp32, "reciprocal: fp32 list under autocast"}},
      {"Softplus", {kFollow, kFp32, "softplus: fp32 list under autocast"}},
      {"TopK", {kFollow, kFollow, "selection: on neither autocast list, torch.topk/sort keep their input's dtype"}},
      {"ArgMax", {kFollow, kFollow, "selection: on neither autocast list (int64 indices)"}},
      {"ArgMin", {kFollow, kFollow, "selection: on neither autocast list (int64 indices)"}},
      {"ReduceMax", {kFollow, kFollow, "selection: torch.amax/amin are on neither autocast list, exact in any dtype"}},
      {"ReduceMin", {kFollow, kFollow, "selection: torch.amax/amin are on neither autocast list, exact in any dtype"}},
      {"Celu", {kFollow, kFollow, "activation: on neither autocast list (as Elu), keeps its input's dtype"}},
      {"Atan", {kFollow, kFollow, "atan: on neither autocast list, keeps its input's dtype"}},
      {"Mod", {kFollow, kFollow, "integer remainder: exact in its input's dtype"}},
      {"GridSample", {kFp32, kFp32, "grid sampling: autocast's fp32 list (grid_sampler), its kernels are fp32"}},
      {"Resize", {kFollow, kFollow, "interpolation: on neither autocast list, F.interpolate keeps its input's dtype"}},
  };
  return table;
}

const OpRow* Row(const Node& node) {
  // ai.dscompile.Attention (ir/dsc_ops.h) is ONNX's Attention under our domain.
  const bool twin = node.domain() == kDscDomain && node.op_type() == ops::kAttention;
  if (!node.domain().empty() && node.domain() != "ai.onnx" && !twin) return nullptr;
  auto it = Table().find(node.op_type());
  return it == Table().end() ? nullptr : &it->second;
}

}  // namespace

DType PrecisionDTypeFromName(const std::string& name) {
  if (name == "fp16") return DType::kFloat16;
  if (name == "bf16") return DType::kBFloat16;
  return DType::kFloat32;
}

const char* PrecisionDTypeName(DType t) {
  switch (t) {
    case DType::kFloat16: return "fp16";
    case DType::kBFloat16: return "bf16";
    case DType::kFloat32: return "fp32";
    default: return DTypeName(t);
  }
}

OpPrecision PolicyFor(const Node& node, PrecisionKind kind) {
  const OpRow* row = Row(node);
  if (!row || kind == PrecisionKind::kFp32) return OpPrecision::kFollow;
  return kind == PrecisionKind::kAutocast ? row->autocast : row->half_model;
}

std::string PolicyReason(const Node& node, PrecisionKind kind) {
  const OpRow* row = Row(node);
  if (!row || PolicyFor(node, kind) == OpPrecision::kFollow) return "follows its inputs";
  return row->why;
}

StatusOr<PrecisionMode> ResolvePrecision(const DsConfig& c) {
  PrecisionMode m;
  m.grad_accum = PrecisionDTypeFromName(c.grad_accum_dtype());
  m.communication = PrecisionDTypeFromName(c.effective_communication_data_type());
  if (c.fp16.enabled) {
    m.kind = PrecisionKind::kHalfModel;
    m.half = DType::kFloat16;
    m.master = true;
    m.master_dtype = c.fp16.fp16_master_weights_and_grads ? DType::kFloat16 : DType::kFloat32;
    m.loss_scaling = true;
    // DeepSpeed's ZeRO optimizers check every step for inf/NaN, with a static scale too.
    m.check_overflow = true;
    m.source = "fp16.enabled";
  } else if (c.bf16.enabled) {
    m.kind = PrecisionKind::kHalfModel;
    m.half = DType::kBFloat16;
    m.master = true;
    m.master_dtype = c.bf16.bf16_master_weights_and_grads ? DType::kBFloat16 : DType::kFloat32;
    m.optimizer_state_dtype = c.bf16.bf16_optimizer_states ? DType::kBFloat16 : DType::kFloat32;
    // Who skips inf/NaN steps in bf16 depends on DeepSpeed's wrapper: the ZeRO 1-2 optimizer reads
    // check_grad_overflow, ZeRO 3 checks only in fp16, BF16_Optimizer never skips, and ddp_bf16
    // (FP16_UnfusedOptimizer in bf16) always checks.
    ASSIGN_OR_RETURN(std::string wrapper, OptimizerWrapper(c));
    if (wrapper == "zero_optimization") m.check_overflow = c.zero.stage < 3 && c.bf16.check_grad_overflow;
    else m.check_overflow = wrapper == "ddp_bf16";
    // FusedAdam, OnebitAdam and ZeroOneAdam count as fused (engine.py:2289): FP16_Optimizer, which
    // skips an inf/NaN step only when it scales the loss, never in bf16 (fused_optimizer.py:264).
    const std::string& impl = c.optimizer.implementation;
    if (wrapper == "ddp_bf16" && (impl == "FusedAdam" || impl == "OnebitAdam" || impl == "ZeroOneAdam"))
      m.check_overflow = false;
    m.source = "bf16.enabled";
  } else if (c.amp.enabled && c.amp.opt_level != "O0") {
    m.half = DType::kFloat16;
    m.loss_scaling = true;
    // apex skips a step only when its scale is dynamic.
    m.check_overflow = c.amp.dynamic_loss_scale;
    m.source = "amp.opt_level " + c.amp.opt_level;
    if (c.amp.opt_level == "O1") {
      m.kind = PrecisionKind::kAutocast;
      if (c.amp.master_weights.value_or(false))
        return Unimplemented(c.source, ": amp.master_weights: O1 keeps fp32 weights, so master weights add nothing; "
                             "dscompile does not implement O1 with master weights");
    } else {
      m.kind = PrecisionKind::kHalfModel;
      const bool o2 = c.amp.opt_level == "O2";
      m.master = c.amp.master_weights.value_or(o2);
      m.fp32_batchnorm = c.amp.keep_batchnorm_fp32.value_or(o2);
      // The fp16 model's own .grad accumulates across micro-steps (DeepSpeed's data types say fp32
      // for amp only because amp leaves fp16.enabled off).
      m.grad_accum = DType::kFloat16;
    }
  }
  if (m.kind == PrecisionKind::kHalfModel && !m.master) m.master_dtype = m.half;
  if (m.kind == PrecisionKind::kHalfModel && !m.master) m.optimizer_state_dtype = m.half;
  return m;
}

int64_t WrapperCallsBeforeTraining(const DsConfig& c) {
  if (c.optimizer.implementation == "MuonWithAuxAdam") return 0;
  return c.zero.stage == 0 && (c.fp16.enabled || c.bf16.enabled) ? 1 : 0;
}

bool IsOnebitOptimizer(const DsConfig& c) { return c.optimizer.onebit(); }

int64_t OnebitCallsBeforeTraining(const DsConfig& c) { return IsOnebitOptimizer(c) ? WrapperCallsBeforeTraining(c) : 0; }

}  // namespace dsc
