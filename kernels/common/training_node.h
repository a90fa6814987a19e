// What the training-op kernels read and check at Init, and the size checks of their Compute (host
// code, shared by kernels/cpu/training_ops.cc and its CUDA twin kernels/cuda/training_ops.cu).
//   optim::AdamNode node;  RETURN_IF_ERROR(node.Init(n, /*int64_step=*/false));
//   ASSIGN_OR_RETURN(ShardRange r, OptimizerShard(ctx, node.shard, node.world_attr, numel, "AdamStep"));
#pragma once

#include <cstdint>

#include "ir/dsc_ops.h"
#include "ir/optim_algorithms.h"
#include "kernels/common/lamb_math.h"
#include "kernels/common/muon_math.h"
#include "kernels/common/optimizer_math.h"
#include "kernels/kernel.h"

namespace dsc::optim {

// The float dtypes the accumulation, norm and update kernels take.
inline bool IsUpdateFloat(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16;
}

inline Status CheckFloat(const Value* v, const char* what) {
  if (!IsUpdateFloat(v->type.dtype))
    return Unimplemented(what, " on ", DTypeName(v->type.dtype), " (float, float16 and bfloat16 are supported)");
  return Status::OK();
}

// The in-place ops need every input they update to be present; Init checks the counts once.
inline Status NeedInputs(const Node& n, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (!n.input(i)) return InvalidArgument(n.Describe(), ": input ", i, " is required");
  return Status::OK();
}

inline Status SameSize(const TensorView& a, const TensorView& b, const char* what) {
  if (a.numel() != b.numel())
    return InvalidArgument(what, ": ", a.numel(), " elements updated from ", b.numel());
  return Status::OK();
}

inline Status StateSize(const TensorView& t, int64_t expected, bool shard, const char* what) {
  if (t.numel() != expected)
    return InvalidArgument(what, ": ", shard ? "shard of " : "", expected, " elements updated from ", t.numel());
  return Status::OK();
}

// The scalar inputs (lr, grad_scale, beta1_override) are float32 scalars.
inline Status FloatScalar(const Node& n, size_t index, const char* op) {
  const Value* v = n.input(index);
  if (v && v->type.dtype != DType::kFloat32)
    return InvalidArgument(op, ": input ", index, " must be a float scalar, not ", DTypeName(v->type.dtype));
  return Status::OK();
}

// The optional skip input of AdamStep/SGDStep: a bool scalar; true = change nothing this step.
inline Status CheckSkip(const Node& n, size_t index, const char* op) {
  const Value* v = n.input(index);
  if (v && v->type.dtype != DType::kBool)
    return InvalidArgument(op, ": skip (input ", index, ") must be bool, not ", DTypeName(v->type.dtype));
  return Status::OK();
}

// The part of `param` an optimizer step updates (ShardOf). `world_attr` <= 0: no `world`
// attribute on the node (nothing to check against).
inline StatusOr<ShardRange> OptimizerShard(const KernelContext& ctx, bool shard, int64_t world_attr, int64_t n,
                                           const char* op) {
  if (!shard) return ShardOf(n, false, 0, 1);
  int64_t rank = 0, world = 1;
  RETURN_IF_ERROR(RankAndWorld(ctx, world_attr, op, &rank, &world));
  return ShardOf(n, true, rank, world);
}

// The optional param_copy input of AdamStep, SGDStep, OptimStep and LambApply (ir/dsc_ops.h): the
// half compute copy the update refreshes from its float32 master in the same pass.
struct ParamCopyNode {
  // `index`: the op's param_copy input; `update_shard`: the update's own shard attribute.
  Status Init(const Node& n, size_t index, bool update_shard, const char* op) {
    present = n.num_inputs() > index && n.input(index) != nullptr;
    shard = n.GetInt("copy_shard", 0) != 0;
    if (!present) {
      if (shard) return InvalidArgument(op, ": copy_shard without a param_copy input (", index, ")");
      return Status::OK();
    }
    this->index = index;
    dtype = n.input(index)->type.dtype;
    if (n.input(0)->type.dtype != DType::kFloat32)
      return Unimplemented(op, ": param_copy of a ", DTypeName(n.input(0)->type.dtype), " param (a float32 master only)");
    if (dtype != DType::kFloat16 && dtype != DType::kBFloat16)
      return Unimplemented(op, ": param_copy (input ", index, ") of ", DTypeName(dtype), " (float16 or bfloat16)");
    if (update_shard) return Unimplemented(op, ": param_copy with shard = 1 (param must be the master or its chunk)");
    world_attr = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    return Status::OK();
  }
  // Where the update's elements 0..len-1 go in param_copy: copy[offset + i] for i < len, as
  // Assign<shard = copy_shard>(param_copy, Cast(param)) writes them; `param_numel` is param's count.
  StatusOr<ShardRange> Range(const KernelContext& ctx, const TensorView& copy, int64_t param_numel,
                             const char* op) const {
    if (!shard) {
      if (copy.numel() != param_numel)
        return InvalidArgument(op, ": param_copy of ", copy.numel(), " elements refreshed from ", param_numel);
      return ShardOf(param_numel, false, 0, 1);
    }
    int64_t rank = 0, world = 1;
    RETURN_IF_ERROR(RankAndWorld(ctx, world_attr, op, &rank, &world));
    const int64_t n = copy.numel(), c = ops::ChunkSize(n, world);
    if (param_numel != c)
      return InvalidArgument(op, ": param_copy's shard of ", c, " elements (ceil(", n, " / ", world,
                             ")) refreshed from ", param_numel);
    return ShardOf(n, true, rank, world);
  }
  bool present = false;
  size_t index = 0;
  DType dtype = DType::kUndefined;
  bool shard = false;
  int64_t world_attr = -1;
};

// acc += X: both float32/float16/bfloat16, each its own dtype.
struct AccumulateNode {
  Status Init(const Node& n) {
    RETURN_IF_ERROR(NeedInputs(n, 2));
    RETURN_IF_ERROR(CheckFloat(n.input(0), "Accumulate"));
    RETURN_IF_ERROR(CheckFloat(n.input(1), "Accumulate"));
    acc = n.input(0)->type.dtype;
    x = n.input(1)->type.dtype;
    return Status::OK();
  }
  DType acc = DType::kFloat32, x = DType::kFloat32;
};

// Assign<shard>(dst, src): dst and src of one dtype; with shard = 1 src is this rank's chunk.
struct AssignNode {
  Status Init(const Node& n) {
    RETURN_IF_ERROR(NeedInputs(n, 2));
    if (n.input(0)->type.dtype != n.input(1)->type.dtype)
      return InvalidArgument("Assign: dst is ", DTypeName(n.input(0)->type.dtype), " but src is ",
                             DTypeName(n.input(1)->type.dtype));
    element_size = DTypeSize(n.input(0)->type.dtype);
    shard = n.GetInt("shard", 0) != 0;
    world_attr = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    return Status::OK();
  }
  // The elements of dst that src fills: all of them, or this rank's chunk [rank*c, min(n, (rank+1)*c)).
  StatusOr<ShardRange> Range(const KernelContext& ctx, const TensorView& dst, const TensorView& src) const {
    const int64_t n = dst.numel();
    if (!shard) {
      RETURN_IF_ERROR(SameSize(dst, src, "Assign"));
      return ShardOf(n, false, 0, 1);
    }
    int64_t rank = 0, world = 1;
    RETURN_IF_ERROR(RankAndWorld(ctx, world_attr, "Assign", &rank, &world));
    const int64_t c = ops::ChunkSize(n, world);
    if (src.numel() != c)
      return InvalidArgument("Assign: shard of ", c, " elements (ceil(", n, " / ", world, ")) updated from ",
                             src.numel());
    return ShardOf(n, true, rank, world);
  }
  size_t element_size = 4;
  bool shard = false;
  int64_t world_attr = -1;
};

// AdamStep's attributes; b2_decimal and wd_decimal are ShortestDecimal of beta2 and weight_decay.
// Plain data: the CUDA kernel passes it to the device.
struct AdamAttrs {
  float beta1, beta2, eps, weight_decay;
  double b2_decimal, wd_decimal;
  bool bias_correction, adam_w_mode;
};

// (param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale[, beta1_override][, skip]).
// `int64_step`: also check that step is int64 (the CUDA kernel reads it on the device unchecked).
struct AdamNode {
  Status Init(const Node& n, bool int64_step) {
    RETURN_IF_ERROR(NeedInputs(n, 7));
    for (size_t i = 0; i < 4; ++i) RETURN_IF_ERROR(CheckFloat(n.input(i), "AdamStep"));
    if (n.input(2)->type.dtype != n.input(3)->type.dtype)
      return InvalidArgument("AdamStep: exp_avg is ", DTypeName(n.input(2)->type.dtype), " but exp_avg_sq is ",
                             DTypeName(n.input(3)->type.dtype));
    for (size_t i : {4, 6, 7}) RETURN_IF_ERROR(FloatScalar(n, i, "AdamStep"));
    if (int64_step && n.input(5)->type.dtype != DType::kInt64)
      return InvalidArgument("AdamStep: step (input 5) must be int64, not ", DTypeName(n.input(5)->type.dtype));
    param = n.input(0)->type.dtype;
    grad = n.input(1)->type.dtype;
    state = n.input(2)->type.dtype;
    attrs.beta1 = n.GetFloat("beta1", 0.9f);
    attrs.beta2 = n.GetFloat("beta2", 0.999f);
    attrs.eps = n.GetFloat("epsilon", 1e-8f);
    attrs.weight_decay = n.GetFloat("weight_decay", 0.0f);
    attrs.b2_decimal = ShortestDecimal(attrs.beta2);
    attrs.wd_decimal = ShortestDecimal(attrs.weight_decay);
    attrs.adam_w_mode = n.GetInt("adam_w_mode", 1) != 0;
    attrs.bias_correction = n.GetInt("bias_correction", 1) != 0;
    shard = n.GetInt("shard", 0) != 0;
    world_attr = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    RETURN_IF_ERROR(copy.Init(n, 9, shard, "AdamStep"));
    return CheckSkip(n, 8, "AdamStep");
  }
  DType param = DType::kFloat32, grad = DType::kFloat32, state = DType::kFloat32;
  ParamCopyNode copy;
  AdamAttrs attrs{};
  bool shard = false;
  int64_t world_attr = -1;
};

// SGDStep's attributes; damp_decimal is ShortestDecimal of dampening. Plain data, as AdamAttrs.
struct SgdAttrs {
  float momentum, weight_decay;
  double damp_decimal;
  bool nesterov;
};

// (param, grad, momentum_buffer?, lr, step, grad_scale[, skip]); `int64_step` as for AdamNode.
struct SgdNode {
  Status Init(const Node& n, bool int64_step) {
    attrs.momentum = n.GetFloat("momentum", 0.0f);
    const float dampening = n.GetFloat("dampening", 0.0f);
    attrs.nesterov = n.GetInt("nesterov", 0) != 0;
    attrs.weight_decay = n.GetFloat("weight_decay", 0.0f);
    attrs.damp_decimal = ShortestDecimal(dampening);
    if (!n.input(0) || !n.input(1) || !n.input(3) || !n.input(4) || !n.input(5))
      return InvalidArgument(n.Describe(), ": param, grad, lr, step and grad_scale are required");
    if (attrs.momentum != 0.0f && !n.input(2))
      return InvalidArgument(n.Describe(), ": momentum ", attrs.momentum, " needs a momentum_buffer input");
    for (size_t i = 0; i < 3; ++i)
      if (n.input(i)) RETURN_IF_ERROR(CheckFloat(n.input(i), "SGDStep"));
    for (size_t i : {3, 5}) RETURN_IF_ERROR(FloatScalar(n, i, "SGDStep"));
    if (int64_step && n.input(4)->type.dtype != DType::kInt64)
      return InvalidArgument("SGDStep: step (input 4) must be int64, not ", DTypeName(n.input(4)->type.dtype));
    param = n.input(0)->type.dtype;
    grad = n.input(1)->type.dtype;
    buf = n.input(2) ? n.input(2)->type.dtype : param;
    shard = n.GetInt("shard", 0) != 0;
    world_attr = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    RETURN_IF_ERROR(copy.Init(n, 7, shard, "SGDStep"));
    return CheckSkip(n, 6, "SGDStep");
  }
  DType param = DType::kFloat32, grad = DType::kFloat32, buf = DType::kFloat32;
  ParamCopyNode copy;
  SgdAttrs attrs{};
  bool shard = false;
  int64_t world_attr = -1;
};

static_assert(static_cast<int>(OptimAlgorithm::kLion) == kLion && static_cast<int>(OptimAlgorithm::kAdagrad) == kAdagrad &&
                  static_cast<int>(OptimAlgorithm::kRMSprop) == kRMSprop &&
                  static_cast<int>(OptimAlgorithm::kAdamax) == kAdamax &&
                  static_cast<int>(OptimAlgorithm::kNAdam) == kNAdam && static_cast<int>(OptimAlgorithm::kRAdam) == kRAdam &&
                  static_cast<int>(OptimAlgorithm::kAdadelta) == kAdadelta,
              "optimizer_math.h's OptimAlgo follows ir/optim_algorithms.h");

// OptimStep (param, grad, state_1..state_k, lr, step, grad_scale[, skip][, beta1_override]
// [, param_copy][, mu_product]) of one algorithm of ir/optim_algorithms.h; `int64_step` as for
// AdamNode. The states share one dtype; mu_product (NAdam with beta1_override) is a float scalar.
struct OptimNode {
  Status Init(const Node& n, bool int64_step) {
    const std::string name = n.GetString("algorithm", "");
    const OptimAlgorithmInfo* info = FindOptimAlgorithm(name);
    if (!info) return InvalidArgument(n.Describe(), ": unknown algorithm '", name, "'");
    states = static_cast<int>(OptimStateSuffixesOf(n).size());
    const size_t k = static_cast<size_t>(states);
    if (n.num_inputs() < k + 5) return InvalidArgument(n.Describe(), ": needs ", k + 5, " inputs for '", name, "'");
    RETURN_IF_ERROR(NeedInputs(n, k + 5));
    for (size_t i = 0; i < k + 2; ++i) RETURN_IF_ERROR(CheckFloat(n.input(i), "OptimStep"));
    for (size_t i = 3; i < k + 2; ++i)
      if (n.input(i)->type.dtype != n.input(2)->type.dtype)
        return InvalidArgument("OptimStep: state ", i - 2, " is ", DTypeName(n.input(i)->type.dtype), " but state 0 is ",
                               DTypeName(n.input(2)->type.dtype));
    lr_index = k + 2;
    for (size_t i : {k + 2, k + 4, k + 6}) RETURN_IF_ERROR(FloatScalar(n, i, "OptimStep"));
    if (n.input(k + 6) && !OptimTakesBeta1Override(info->id))
      return InvalidArgument("OptimStep: algorithm '", name, "' takes no beta1_override (input ", k + 6, ")");
    has_mu_product = n.num_inputs() > k + 8 && n.input(k + 8);
    if (has_mu_product != OptimTakesMuProduct(info->id, n.input(k + 6) != nullptr))
      return InvalidArgument("OptimStep: algorithm '", name, "' ", has_mu_product ? "takes no" : "needs a",
                             " mu_product (input ", k + 8, ")", has_mu_product ? "" : " with beta1_override");
    if (has_mu_product) RETURN_IF_ERROR(FloatScalar(n, k + 8, "OptimStep"));
    if (int64_step && n.input(k + 3)->type.dtype != DType::kInt64)
      return InvalidArgument("OptimStep: step (input ", k + 3, ") must be int64, not ",
                             DTypeName(n.input(k + 3)->type.dtype));
    param = n.input(0)->type.dtype;
    grad = n.input(1)->type.dtype;
    state = n.input(2)->type.dtype;
    auto f = [&](const char* attr) {
      for (const OptimFloatAttr& a : info->floats)
        if (std::string(attr) == a.name) return n.GetFloat(attr, a.default_value);
      return 0.0f;
    };
    attrs.algo = static_cast<int>(info->id);
    attrs.beta1 = f("beta1");
    attrs.beta2 = f("beta2");
    attrs.eps = f("epsilon");
    attrs.weight_decay = f("weight_decay");
    attrs.lr_decay = f("lr_decay");
    attrs.initial_acc = f("initial_accumulator_value");
    attrs.alpha = f("alpha");
    attrs.momentum = f("momentum");
    attrs.momentum_decay = f("momentum_decay");
    attrs.rho = f("rho");
    attrs.beta1_d = ShortestDecimal(attrs.beta1);
    attrs.beta2_d = ShortestDecimal(attrs.beta2);
    attrs.wd_d = ShortestDecimal(attrs.weight_decay);
    attrs.lr_decay_d = ShortestDecimal(attrs.lr_decay);
    attrs.alpha_d = ShortestDecimal(attrs.alpha);
    attrs.momentum_decay_d = ShortestDecimal(attrs.momentum_decay);
    attrs.rho_d = ShortestDecimal(attrs.rho);
    attrs.centered = n.GetInt("centered", 0) != 0;
    attrs.decoupled = n.GetInt("decoupled_weight_decay", 0) != 0;
    shard = n.GetInt("shard", 0) != 0;
    world_attr = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    RETURN_IF_ERROR(copy.Init(n, k + 7, shard, "OptimStep"));
    return CheckSkip(n, k + 5, "OptimStep");
  }
  // Inputs: param 0, grad 1, states 2..2+states-1, then lr, step, grad_scale, skip, beta1_override,
  // param_copy, mu_product.
  size_t lr() const { return lr_index; }
  size_t step() const { return lr_index + 1; }
  size_t grad_scale() const { return lr_index + 2; }
  size_t skip() const { return lr_index + 3; }
  size_t beta1() const { return lr_index + 4; }
  size_t mu_product() const { return lr_index + 6; }
  bool has_mu_product = false;
  DType param = DType::kFloat32, grad = DType::kFloat32, state = DType::kFloat32;
  ParamCopyNode copy;
  OptimAttrs attrs{};
  int states = 0;
  size_t lr_index = 0;
  bool shard = false;
  int64_t world_attr = -1;
};

// LambMoments/LambApply's shared attributes (their defaults FusedLamb's constructor's).
inline LambAttrs ReadLambAttrs(const Node& n) {
  LambAttrs a{};
  a.beta1 = n.GetFloat("beta1", 0.9f);
  a.beta2 = n.GetFloat("beta2", 0.999f);
  a.eps = n.GetFloat("epsilon", 1e-8f);
  a.weight_decay = n.GetFloat("weight_decay", 0.0f);
  a.max_coeff = n.GetFloat("max_coeff", 10.0f);
  a.min_coeff = n.GetFloat("min_coeff", 0.01f);
  a.eps_inside_sqrt = n.GetInt("eps_inside_sqrt", 0) != 0;
  a.bias_correction = n.GetInt("bias_correction", 1) != 0;
  return a;
}

// LambMoments (param, grad, exp_avg, exp_avg_sq, grad_scale[, skip][, beta1_override]) -> sums float[2]; the
// moments share one dtype. `chunk_of` > 0: the tensors are this rank's chunk of a chunk_of-element
// tensor, and only its first ShardOf(chunk_of, true, rank, world).len elements count in the sums.
struct LambMomentsNode {
  Status Init(const Node& n) {
    RETURN_IF_ERROR(NeedInputs(n, 5));
    for (size_t i = 0; i < 4; ++i) RETURN_IF_ERROR(CheckFloat(n.input(i), "LambMoments"));
    if (n.input(2)->type.dtype != n.input(3)->type.dtype)
      return InvalidArgument("LambMoments: exp_avg is ", DTypeName(n.input(2)->type.dtype), " but exp_avg_sq is ",
                             DTypeName(n.input(3)->type.dtype));
    for (size_t i : {4, 6}) RETURN_IF_ERROR(FloatScalar(n, i, "LambMoments"));
    if (n.num_outputs() != 1 || !n.output(0) || n.output(0)->type.dtype != DType::kFloat32)
      return InvalidArgument("LambMoments: needs one float output (the two sums of squares)");
    param = n.input(0)->type.dtype;
    grad = n.input(1)->type.dtype;
    state = n.input(2)->type.dtype;
    attrs = ReadLambAttrs(n);
    shard = n.GetInt("shard", 0) != 0;
    chunk_of = n.GetInt("chunk_of", 0);
    world_attr = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    return CheckSkip(n, 5, "LambMoments");
  }
  // The elements of grad/state to update (r.state) and to count in the sums (r.len, from
  // param[r.offset] and the first r.len of the chunk); `numel` is param's element count.
  StatusOr<ShardRange> Range(const KernelContext& ctx, int64_t numel) const {
    ASSIGN_OR_RETURN(ShardRange r, OptimizerShard(ctx, shard, world_attr, numel, "LambMoments"));
    if (chunk_of > 0 && !shard) {
      int64_t rank = 0, world = 1;
      RETURN_IF_ERROR(RankAndWorld(ctx, world_attr, "LambMoments", &rank, &world));
      const ShardRange whole = ShardOf(chunk_of, true, rank, world);
      if (whole.state != numel)
        return InvalidArgument("LambMoments: chunk of ", whole.state, " elements (ceil(", chunk_of, " / ", world,
                               ")) expected, got ", numel);
      return ShardRange{0, whole.len, numel};
    }
    return r;
  }
  DType param = DType::kFloat32, grad = DType::kFloat32, state = DType::kFloat32;
  LambAttrs attrs{};
  bool shard = false;
  int64_t chunk_of = 0;
  int64_t world_attr = -1;
};

// LambApply (param, sums, exp_avg, exp_avg_sq, lr, step[, skip][, beta1_override]); sums float[2k], this tensor's
// pair at 2*slot. `int64_step` as for AdamNode.
struct LambApplyNode {
  Status Init(const Node& n, bool int64_step) {
    RETURN_IF_ERROR(NeedInputs(n, 6));
    for (size_t i : {0, 2, 3}) RETURN_IF_ERROR(CheckFloat(n.input(i), "LambApply"));
    if (n.input(2)->type.dtype != n.input(3)->type.dtype)
      return InvalidArgument("LambApply: exp_avg is ", DTypeName(n.input(2)->type.dtype), " but exp_avg_sq is ",
                             DTypeName(n.input(3)->type.dtype));
    for (size_t i : {1, 4, 7}) RETURN_IF_ERROR(FloatScalar(n, i, "LambApply"));
    if (int64_step && n.input(5)->type.dtype != DType::kInt64)
      return InvalidArgument("LambApply: step (input 5) must be int64, not ", DTypeName(n.input(5)->type.dtype));
    param = n.input(0)->type.dtype;
    state = n.input(2)->type.dtype;
    attrs = ReadLambAttrs(n);
    slot = n.GetInt("slot", 0);
    if (slot < 0) return InvalidArgument("LambApply: slot ", slot, " is negative");
    shard = n.GetInt("shard", 0) != 0;
    world_attr = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    RETURN_IF_ERROR(copy.Init(n, 8, shard, "LambApply"));
    return CheckSkip(n, 6, "LambApply");
  }
  // The sums input must hold this node's pair.
  Status CheckSums(const TensorView& sums) const {
    if (sums.numel() < 2 * slot + 2)
      return InvalidArgument("LambApply: slot ", slot, " needs ", 2 * slot + 2, " sums, got ", sums.numel());
    return Status::OK();
  }
  DType param = DType::kFloat32, state = DType::kFloat32;
  ParamCopyNode copy;
  LambAttrs attrs{};
  int64_t slot = 0;
  bool shard = false;
  int64_t world_attr = -1;
};

// MuonMomentum (param, grad, momentum_buffer, grad_scale[, skip]) -> update float, shaped as
// momentum_buffer; param is not read (with shard = 1 it is the whole tensor and grad/momentum
// this rank's chunk).
struct MuonMomentumNode {
  Status Init(const Node& n) {
    RETURN_IF_ERROR(NeedInputs(n, 4));
    for (size_t i = 1; i < 3; ++i) RETURN_IF_ERROR(CheckFloat(n.input(i), "MuonMomentum"));
    RETURN_IF_ERROR(FloatScalar(n, 3, "MuonMomentum"));
    if (n.num_outputs() != 1 || !n.output(0) || n.output(0)->type.dtype != DType::kFloat32)
      return InvalidArgument("MuonMomentum: needs one float output (the update)");
    grad = n.input(1)->type.dtype;
    state = n.input(2)->type.dtype;
    beta = n.GetFloat("momentum", 0.95f);
    // Python's 1 - beta in double, cast to float by torch's lerp_.
    one_minus = static_cast<float>(1.0 - ShortestDecimal(beta));
    return CheckSkip(n, 4, "MuonMomentum");
  }
  DType grad = DType::kFloat32, state = DType::kFloat32;
  float beta = 0.95f, one_minus = 0.05f;
};

// MuonApply (param, update, lr[, skip]); update float, the whole tensor of `matrix`'s shape.
// The range of param it writes: all of it, this rank's chunk of it (shard = 1), or, when param
// is itself this rank's chunk of chunk_of elements, the chunk's elements of the tensor.
struct MuonApplyNode {
  Status Init(const Node& n) {
    RETURN_IF_ERROR(NeedInputs(n, 3));
    RETURN_IF_ERROR(CheckFloat(n.input(0), "MuonApply"));
    if (n.input(1)->type.dtype != DType::kFloat32)
      return InvalidArgument("MuonApply: the update (input 1) must be float, not ", DTypeName(n.input(1)->type.dtype));
    RETURN_IF_ERROR(FloatScalar(n, 2, "MuonApply"));
    const std::optional<Shape>& shape = n.input(1)->type.shape;
    if (!shape || !IsStatic(*shape) || shape->size() < 2)
      return InvalidArgument("MuonApply: the update needs a static shape of 2 or more dims");
    matrix = MuonMatrixOf(DimValues(*shape));
    const std::string method = n.GetString("ns_method", "gram");
    if (method != "gram" && method != "standard")
      return InvalidArgument("MuonApply: ns_method '", method, "' (gram or standard)");
    ns = method == "gram" ? MuonNs::kGram : MuonNs::kStandard;
    ns_steps = static_cast<int>(n.GetInt("ns_steps", 5));
    weight_decay = n.GetFloat("weight_decay", 0.0f);
    param = n.input(0)->type.dtype;
    shard = n.GetInt("shard", 0) != 0;
    chunk_of = n.GetInt("chunk_of", 0);
    world_attr = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    return CheckSkip(n, 3, "MuonApply");
  }
  // r.offset: the first element of the tensor written; r.len of them; written at param[0] when
  // param is a chunk (chunk_of), else at param[r.offset].
  StatusOr<ShardRange> Range(const KernelContext& ctx, int64_t param_numel, int64_t update_numel) const {
    if (update_numel != matrix.numel())
      return InvalidArgument("MuonApply: update of ", update_numel, " elements, expected ", matrix.numel());
    if (chunk_of > 0 && !shard) {
      int64_t rank = 0, world = 1;
      RETURN_IF_ERROR(RankAndWorld(ctx, world_attr, "MuonApply", &rank, &world));
      const ShardRange whole = ShardOf(chunk_of, true, rank, world);
      if (chunk_of != update_numel || whole.state != param_numel)
        return InvalidArgument("MuonApply: chunk of ", whole.state, " elements of ", chunk_of, " expected, got ",
                               param_numel, " of ", update_numel);
      return whole;
    }
    if (param_numel != update_numel)
      return InvalidArgument("MuonApply: param of ", param_numel, " elements updated from ", update_numel);
    return OptimizerShard(ctx, shard, world_attr, param_numel, "MuonApply");
  }
  bool param_is_chunk() const { return chunk_of > 0 && !shard; }
  DType param = DType::kFloat32;
  MuonMatrix matrix;
  MuonNs ns = MuonNs::kGram;
  int ns_steps = 5;
  float weight_decay = 0.0f;
  bool shard = false;
  int64_t chunk_of = 0;
  int64_t world_attr = -1;
};

}  // namespace dsc::optim
