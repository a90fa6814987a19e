// The mixed-precision regime a config asks for, and the per-op policy table: which ops always
// compute in half, which always in fp32, and which follow their inputs.
//
// The regime is DeepSpeed's (fp16/bf16: the engine's model.half()/bfloat16() with fp32 master
// weights in the optimizer) or apex's (amp O1: torch.autocast-style per-op casts with fp32
// weights; O2: a half model with fp32 master weights and BatchNorm kept fp32; O3: a half model
// without master weights). docs/config.md says what maps to what.
#pragma once

#include <string>

#include "ir/dtype.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace dsc {

struct DsConfig;

enum class PrecisionKind {
  kFp32,       // nothing changes
  kHalfModel,  // parameters and activations in half; the policy's fp32 list computes in fp32
  kAutocast,   // parameters fp32; only the policy's half list computes in half
};

struct PrecisionMode {
  PrecisionKind kind = PrecisionKind::kFp32;
  DType half = DType::kFloat32;         // float16 or bfloat16 when not kFp32
  bool master = false;                  // an fp32 (or master_dtype) master copy the optimizer updates
  DType master_dtype = DType::kFloat32;
  DType optimizer_state_dtype = DType::kFloat32;
  bool fp32_batchnorm = false;          // amp O2's keep_batchnorm_fp32
  bool loss_scaling = false;            // dsc::loss_scale input (fp16, amp)
  bool check_overflow = false;          // dsc::overflow output: skip steps whose gradients hold inf/NaN
  DType grad_accum = DType::kFloat32;   // data_types.grad_accum_dtype, else DeepSpeed's default
  DType communication = DType::kFloat32;  // communication_data_type, else DeepSpeed's default
  std::string source;                   // the config keys that chose it, for dumps and errors

  bool active() const { return kind != PrecisionKind::kFp32; }
};

// The regime of a resolved config. Fails (Unimplemented) for combinations dscompile does not run.
StatusOr<PrecisionMode> ResolvePrecision(const DsConfig& config);

// The calls DeepSpeed makes to the optimizer's step() before the first training step: 1 when
// fp16 or bf16 wraps it at ZeRO 0 (engine.py:2289 _configure_fp16_optimizer: FP16_Optimizer for
// FusedAdam, OnebitAdam and ZeroOneAdam, FP16_UnfusedOptimizer for every other optimizer), as both
// wrappers' constructors call initialize_optimizer_states, which runs optimizer.step() once on
// zero gradients (fused_optimizer.py:123, unfused_optimizer.py:407) with the optimizer's own lr
// and betas (the LR scheduler is built after it). That call counts: Adam's bias correction of
// training step s is call s + this, and decoupled weight decay acts once on the fp32 masters
// before training (the half parameters keep their values until the first step copies the masters
// back). The ZeRO optimizers and BF16_Optimizer no longer make it (DeepSpeed #5104). 0 otherwise,
// and 0 for Muon, which dscompile trains at ZeRO 0 as at stages 1-3 by design (docs/config.md).
int64_t WrapperCallsBeforeTraining(const DsConfig& config);
// The same for the 1-bit optimizers, whose nodes count calls themselves (step_offset): that call
// is their own initialising call (adam.py:241, zoadam.py:298, lamb.py:374), so training step s is
// the optimizer's call s + this, and their freeze counts in calls. 0 for every other optimizer,
// whose constructor call the runtime makes (runtime/trainer.cc) with dsc::step counting calls.
int64_t OnebitCallsBeforeTraining(const DsConfig& config);
// Whether the config's optimizer is one of the 1-bit family (OnebitAdam, ZeroOneAdam, OnebitLamb).
bool IsOnebitOptimizer(const DsConfig& config);

// How an op computes under a regime.
enum class OpPrecision {
  kFollow,  // the widest of its non-constant float inputs, as PyTorch's type promotion
  kHalf,    // always half (GEMM-like: tensor-core work)
  kFp32,    // always fp32 (losses, reductions; under autocast also softmax and norms)
};
OpPrecision PolicyFor(const Node& node, PrecisionKind kind);
// One line saying why the policy puts an op where it does ("MatMul: half list").
std::string PolicyReason(const Node& node, PrecisionKind kind);

// "fp16" | "bf16" | "fp32" → dtype, and back (other dtypes by their ONNX names).
DType PrecisionDTypeFromName(const std::string& name);
const char* PrecisionDTypeName(DType t);

}  // namespace dsc
