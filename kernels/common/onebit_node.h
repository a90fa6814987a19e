// What the 1-bit family's kernels (1-bit Adam, 0/1 Adam, 1-bit Lamb and their CompressedAllReduce)
// read and check at Init, and the size checks of their Compute (host code, shared by
// kernels/cpu/onebit.cc, onebit_lamb.cc, zoadam.cc and their CUDA twins in kernels/cuda/).
//   onebit::OnebitNode node;  RETURN_IF_ERROR(node.Init(n, /*floats=*/3, /*step=*/3, /*skip_index=*/5));
//   ASSIGN_OR_RETURN(int64_t n, node.Sizes(ctx, world));  // CompressedAllReduceNode
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "ir/dsc_ops.h"
#include "kernels/common/collective_node.h"
#include "kernels/common/onebit_lamb_math.h"
#include "kernels/common/onebit_math.h"
#include "kernels/common/optimizer_math.h"
#include "kernels/common/training_node.h"
#include "kernels/common/zoadam_math.h"
#include "kernels/kernel.h"

namespace dsc::onebit {

// Inputs [from, to) that are present are float32 (`what`: whose kernels say so).
inline Status NeedFloat32(const Node& n, size_t from, size_t to, const char* what) {
  for (size_t i = from; i < to && i < n.num_inputs(); ++i)
    if (n.input(i) && !n.input(i)->name().empty() && n.input(i)->type.dtype != DType::kFloat32)
      return Unimplemented(n.Describe(), ": input ", i, " is ", DTypeName(n.input(i)->type.dtype), "; ", what,
                           "'s kernels take float32 states, masters and gradients");
  return Status::OK();
}
inline Status NeedFloat32(const Node& n, std::initializer_list<size_t> inputs, const char* what) {
  for (size_t i : inputs)
    if (n.input(i) && n.input(i)->type.dtype != DType::kFloat32)
      return Unimplemented(n.Describe(), ": input ", i, " is ", DTypeName(n.input(i)->type.dtype), "; ", what,
                           "'s kernels take float32 parameters, states and gradients");
  return Status::OK();
}

inline Status NeedInt64Step(const Node& n, size_t step) {
  if (n.input(step)->type.dtype != DType::kInt64)
    return InvalidArgument(n.Describe(), ": step (input ", step, ") must be int64");
  return Status::OK();
}

// The Adam hyper-parameters every 1-bit op carries, as Python's doubles of the float attributes.
struct AdamAttrs {
  void Read(const Node& n) {
    beta1 = optim::ShortestDecimal(n.GetFloat("beta1", 0.9f));
    beta2 = optim::ShortestDecimal(n.GetFloat("beta2", 0.999f));
    eps = optim::ShortestDecimal(n.GetFloat("epsilon", 1e-8f));
    weight_decay = optim::ShortestDecimal(n.GetFloat("weight_decay", 0.0f));
  }
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

// The attributes OnebitMomentum and OnebitAdamStep read.
struct OnebitNode : AdamAttrs {
  // Inputs [0, floats) are float32 tensors, `step` the int64 step, inputs up to `skip` present.
  Status Init(const Node& n, size_t floats, size_t step, size_t skip_index) {
    RETURN_IF_ERROR(optim::NeedInputs(n, skip_index));
    RETURN_IF_ERROR(NeedFloat32(n, 0, floats, "1-bit Adam"));
    RETURN_IF_ERROR(NeedInt64Step(n, step));
    RETURN_IF_ERROR(optim::FloatScalar(n, skip_index - 1, n.op_type().c_str()));
    RETURN_IF_ERROR(optim::CheckSkip(n, skip_index, n.op_type().c_str()));
    freeze_step = n.GetInt("freeze_step", 0);
    if (freeze_step < 2) return InvalidArgument(n.Describe(), ": freeze_step must be >= 2, got ", freeze_step);
    Read(n);
    return Status::OK();
  }
  DSC_HD OnebitScalars Scalars(double lr, float grad_scale) const {
    return MakeOnebitScalars(beta1, beta2, eps, weight_decay, lr, grad_scale);
  }
  int64_t freeze_step = 0;
};

// CompressedAllReduce<world, freeze_step>(worker_error, server_error, step, skip, X1..Xk).
struct CompressedAllReduceNode : coll::CollectiveNode {
  Status Init(const Node& n) {
    RETURN_IF_ERROR(CollectiveNode::Init(n, /*reduction=*/false));
    RETURN_IF_ERROR(optim::NeedInputs(n, 3));
    RETURN_IF_ERROR(NeedFloat32(n, 0, 2, "1-bit Adam"));
    RETURN_IF_ERROR(NeedFloat32(n, 4, n.num_inputs(), "1-bit Adam"));
    RETURN_IF_ERROR(optim::CheckSkip(n, 3, "CompressedAllReduce"));
    if (n.input(2)->type.dtype != DType::kInt64) return InvalidArgument(name_, ": step (input 2) must be int64");
    if (n.num_inputs() < 5) return InvalidArgument(name_, ": needs at least one tensor to reduce (input 4)");
    freeze_step_ = n.GetInt("freeze_step", 0);
    if (freeze_step_ < 2) return InvalidArgument(name_, ": needs freeze_step >= 2, got ", freeze_step_);
    return Status::OK();
  }

  // The members' element count n, after checking the errors' sizes against it: worker_error holds
  // the padded size = CompressedAllReduceSize(n, world) elements, server_error size / world.
  StatusOr<int64_t> Sizes(const KernelContext& ctx, int64_t world) const {
    const int64_t size = ctx.input(0).numel(), chunk = ctx.input(1).numel();
    int64_t n = 0;
    for (size_t i = 4; i < ctx.inputs.size(); ++i) n += ctx.input(i).numel();
    if (size != chunk * world || size % ops::CompressedAllReduceUnit(world) != 0 || size < n)
      return InvalidArgument(name_, ": worker_error has ", size, " elements and server_error ", chunk, " for ", n,
                             " elements on ", world, " ranks; expected ", ops::CompressedAllReduceSize(n, world),
                             " and ", ops::CompressedAllReduceSize(n, world) / world);
    return n;
  }

  int64_t freeze_step_ = 2;
};

// 1-bit Lamb's ops: inputs `floats` are float32 tensors, `state` the float64 lamb_state, `step`
// the int64 step; the inputs before `skip_index` are present.
inline Status CheckLambInputs(const Node& n, std::initializer_list<size_t> floats, size_t state, size_t step,
                              size_t skip_index) {
  RETURN_IF_ERROR(optim::NeedInputs(n, skip_index));
  RETURN_IF_ERROR(NeedFloat32(n, floats, "1-bit Lamb"));
  if (n.input(state)->type.dtype != DType::kFloat64)
    return InvalidArgument(n.Describe(), ": lamb_state (input ", state, ") must be float64");
  RETURN_IF_ERROR(NeedInt64Step(n, step));
  return optim::CheckSkip(n, skip_index, n.op_type().c_str());
}

inline StatusOr<int64_t> LambFreezeStep(const Node& n) {
  const int64_t freeze_step = n.GetInt("freeze_step", 0);
  if (freeze_step < 2) return InvalidArgument(n.Describe(), ": freeze_step must be >= 2, got ", freeze_step);
  return freeze_step;
}

inline Status CheckLambState(const KernelContext& ctx, size_t index, const char* op) {
  if (ctx.input(index).numel() != kLambStateSize)
    return InvalidArgument(op, ": lamb_state has ", ctx.input(index).numel(), " elements, expected ", kLambStateSize);
  return Status::OK();
}

// OnebitLambStep's attributes.
struct OnebitLambStepNode : AdamAttrs {
  Status Init(const Node& n) {
    RETURN_IF_ERROR(CheckLambInputs(n, {0, 1, 2, 3, 4, 6}, 5, 8, 10));
    RETURN_IF_ERROR(optim::FloatScalar(n, 7, "OnebitLambStep"));
    RETURN_IF_ERROR(optim::FloatScalar(n, 9, "OnebitLambStep"));
    ASSIGN_OR_RETURN(freeze_step, LambFreezeStep(n));
    fresh_step = n.GetInt("fresh_step", 0);
    Read(n);
    auto attr = [&n](const char* name, float fallback) { return optim::ShortestDecimal(n.GetFloat(name, fallback)); };
    max_coeff = attr("max_coeff", 10.0f);
    min_coeff = attr("min_coeff", 0.01f);
    coeff_beta = attr("coeff_beta", 0.9f);
    limits = {attr("factor_max", 4.0f), attr("factor_min", 0.5f), attr("factor_threshold", 0.1f)};
    return Status::OK();
  }
  int64_t freeze_step = 2, fresh_step = 0;
  double max_coeff = 10.0, min_coeff = 0.01, coeff_beta = 0.9;
  FactorLimits limits{4.0, 0.5, 0.1};
};

}  // namespace dsc::onebit

namespace dsc::zoadam {

// The attributes every 0/1 Adam op reads, and its step and skip inputs' checks.
struct ZoadamNode : onebit::AdamAttrs {
  Status Init(const Node& n, size_t step, size_t skip_index) {
    RETURN_IF_ERROR(optim::NeedInputs(n, skip_index));
    RETURN_IF_ERROR(onebit::NeedInt64Step(n, step));
    RETURN_IF_ERROR(optim::CheckSkip(n, skip_index, n.op_type().c_str()));
    schedule = ZoadamSchedule{n.GetInt("last_var_step", 0), n.GetInt("var_update_scaler", 0),
                              n.GetInt("local_step_scaler", 0), n.GetInt("local_step_clipper", 0)};
    if (schedule.last_var_step < 2 || schedule.var_update_scaler < 1 || schedule.local_step_scaler < 1 ||
        schedule.local_step_clipper < 1)
      return InvalidArgument(n.Describe(), ": needs last_var_step >= 2 and var_update_scaler, local_step_scaler, "
                             "local_step_clipper >= 1");
    world = n.GetInt("world", 1);
    Read(n);
    return Status::OK();
  }
  DSC_HD ZoadamScalars Scalars(double lr, float grad_scale) const {
    return MakeZoadamScalars(beta1, beta2, eps, weight_decay, lr, grad_scale);
  }
  ZoadamSchedule schedule{2, 1, 1, 1};
  int64_t world = 1;
};

inline Status NeedFloat32(const Node& n, std::initializer_list<size_t> inputs) {
  return onebit::NeedFloat32(n, inputs, "0/1 Adam");
}

inline Status NeedLrs(const Node& n, size_t index) {
  if (n.input(index)->type.dtype != DType::kFloat64)
    return InvalidArgument(n.Describe(), ": lrs (input ", index, ") must be float64");
  return Status::OK();
}

}  // namespace dsc::zoadam
