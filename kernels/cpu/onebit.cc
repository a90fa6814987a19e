// CPU kernels of 1-bit Adam (ir/dsc_ops.h: OnebitMomentum, OnebitAdamStep) and of its
// error-compensated compressed all-reduce (CompressedAllReduce) over KernelContext::comm: signs
// packed eight to a byte travel by all_to_all and all_gather, each rank's scale by all_gather.
// float32 only: the states and masters 1-bit Adam updates are float32 in every precision regime.
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/collective_node.h"
#include "kernels/common/onebit_math.h"
#include "kernels/common/optimizer_math.h"
#include "kernels/common/training_node.h"
#include "kernels/cpu/core_util.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"

namespace dsc::cpu {
namespace {

using onebit::OnebitScalars;

int64_t StepOf(const KernelContext& ctx, size_t index) { return ctx.input(index).data<int64_t>()[0]; }

Status NeedFloat32(const Node& n, size_t from, size_t to) {
  for (size_t i = from; i < to && i < n.num_inputs(); ++i)
    if (n.input(i) && !n.input(i)->name().empty() && n.input(i)->type.dtype != DType::kFloat32)
      return Unimplemented(n.Describe(), ": input ", i, " is ", DTypeName(n.input(i)->type.dtype),
                           "; 1-bit Adam's kernels take float32 states, masters and gradients");
  return Status::OK();
}

// The attributes both per-parameter ops read.
struct OnebitNode {
  // Inputs [0, floats) are float32 tensors, `step` the int64 step, inputs up to `skip` present.
  Status Init(const Node& n, size_t floats, size_t step, size_t skip_index) {
    RETURN_IF_ERROR(optim::NeedInputs(n, skip_index));
    RETURN_IF_ERROR(NeedFloat32(n, 0, floats));
    if (n.input(step)->type.dtype != DType::kInt64)
      return InvalidArgument(n.Describe(), ": step (input ", step, ") must be int64");
    RETURN_IF_ERROR(optim::FloatScalar(n, skip_index - 1, n.op_type().c_str()));
    RETURN_IF_ERROR(optim::CheckSkip(n, skip_index, n.op_type().c_str()));
    freeze_step = n.GetInt("freeze_step", 0);
    if (freeze_step < 2) return InvalidArgument(n.Describe(), ": freeze_step must be >= 2, got ", freeze_step);
    beta1 = optim::ShortestDecimal(n.GetFloat("beta1", 0.9f));
    beta2 = optim::ShortestDecimal(n.GetFloat("beta2", 0.999f));
    eps = optim::ShortestDecimal(n.GetFloat("epsilon", 1e-8f));
    weight_decay = optim::ShortestDecimal(n.GetFloat("weight_decay", 0.0f));
    return Status::OK();
  }
  OnebitScalars Scalars(double lr, float grad_scale) const {
    return onebit::MakeOnebitScalars(beta1, beta2, eps, weight_decay, lr, grad_scale);
  }
  int64_t freeze_step = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

// OnebitMomentum(param, grad, exp_avg, step, grad_scale[, skip]): the compressed steps' momentum.
class OnebitMomentumKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, 3, 3, 5); }
  Status Compute(KernelContext& ctx) override {
    if (Skipped(ctx, 5) || StepOf(ctx, 3) <= node_.freeze_step) return Status::OK();
    const int64_t n = ctx.input(2).numel();
    RETURN_IF_ERROR(optim::SameSize(ctx.input(2), ctx.input(1), "OnebitMomentum"));
    const OnebitScalars c = node_.Scalars(0.0, ctx.input(4).data<float>()[0]);
    const float* g = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) m[i] = onebit::OnebitMoment(m[i], g[i], c);
    return Status::OK();
  }

 private:
  OnebitNode node_;
};

// OnebitAdamStep(param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale[, skip]).
class OnebitAdamStepKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, 5, 5, 7); }
  Status Compute(KernelContext& ctx) override {
    const int64_t step = StepOf(ctx, 5);
    if (step < 1) return InvalidArgument("OnebitAdamStep: step must be >= 1 (1-based), got ", step);
    if (Skipped(ctx, 7) || step == 1) return Status::OK();
    const int64_t n = ctx.input(0).numel();
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "OnebitAdamStep"));
    const OnebitScalars c = node_.Scalars(optim::ShortestDecimal(ctx.input(4).data<float>()[0]),
                                          ctx.input(6).data<float>()[0]);
    float* p = ctx.input(0).data<float>();
    const float* g = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
    float* v = ctx.input(3).data<float>();
    const bool moments = step <= node_.freeze_step;
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      if (moments) {
        m[i] = onebit::OnebitMoment(m[i], g[i], c);
        v[i] = onebit::OnebitSecondMoment(v[i], g[i], c);
      }
      p[i] = onebit::OnebitApply(p[i], m[i], v[i], c);
    }
    return Status::OK();
  }

 private:
  OnebitNode node_;
};

// ||x|| / sqrt(len) in float, as torch.linalg.norm(x) / np.sqrt(numel) (the sum in double).
float CompressionScale(const float* x, int64_t len) {
  double sum = 0.0;
  for (int64_t i = 0; i < len; ++i) sum += static_cast<double>(x[i]) * x[i];
  return static_cast<float>(std::sqrt(sum)) / static_cast<float>(std::sqrt(static_cast<double>(len)));
}

// x -> its signs (packed into `bits`, packbits order) and the error x - scale*sign(x) (into `error`).
void Compress(const float* x, int64_t len, float scale, uint8_t* bits, float* error) {
  std::memset(bits, 0, static_cast<size_t>(len / 8));
  for (int64_t i = 0; i < len; ++i) {
    const bool pos = onebit::OnebitPositive(x[i]);
    if (pos) bits[i >> 3] |= static_cast<uint8_t>(0x80u >> (i & 7));
    error[i] = x[i] - scale * (pos ? 1.0f : -1.0f);
  }
}

// CompressedAllReduce<world, freeze_step>(worker_error, server_error, step, skip, X1..Xk).
class CompressedAllReduceKernel : public OpKernel, protected coll::CollectiveNode {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(CollectiveNode::Init(n, /*reduction=*/false));
    RETURN_IF_ERROR(optim::NeedInputs(n, 3));
    RETURN_IF_ERROR(NeedFloat32(n, 0, 2));
    RETURN_IF_ERROR(NeedFloat32(n, 4, n.num_inputs()));
    RETURN_IF_ERROR(optim::CheckSkip(n, 3, "CompressedAllReduce"));
    if (n.input(2)->type.dtype != DType::kInt64) return InvalidArgument(name_, ": step (input 2) must be int64");
    if (n.num_inputs() < 5) return InvalidArgument(name_, ": needs at least one tensor to reduce (input 4)");
    freeze_step_ = n.GetInt("freeze_step", 0);
    if (freeze_step_ < 2) return InvalidArgument(name_, ": needs freeze_step >= 2, got ", freeze_step_);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    if (Skipped(ctx, 3) || StepOf(ctx, 2) <= freeze_step_) return Status::OK();
    int64_t rank = 0, world = 1;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    if (world == 1) return Status::OK();  // DeepSpeed compresses only with more than one rank
    float* worker_error = ctx.input(0).data<float>();
    float* server_error = ctx.input(1).data<float>();
    const int64_t size = ctx.input(0).numel(), chunk = ctx.input(1).numel();
    int64_t n = 0;
    for (size_t i = 4; i < ctx.inputs.size(); ++i) n += ctx.input(i).numel();
    if (size != chunk * world || size % ops::CompressedAllReduceUnit(world) != 0 || size < n)
      return InvalidArgument(name_, ": worker_error has ", size, " elements and server_error ", chunk, " for ", n,
                             " elements on ", world, " ranks; expected ", ops::CompressedAllReduceSize(n, world),
                             " and ", ops::CompressedAllReduceSize(n, world) / world);
    // The worker side: x = members + error, compressed; signs chunked by destination rank.
    x_.assign(static_cast<size_t>(size), 0.0f);
    int64_t at = 0;
    for (size_t i = 4; i < ctx.inputs.size(); ++i) {
      const TensorView& m = ctx.input(i);
      std::memcpy(x_.data() + at, m.ptr, static_cast<size_t>(m.numel()) * sizeof(float));
      at += m.numel();
    }
    for (int64_t i = 0; i < size; ++i) x_[i] += worker_error[i];
    const float scale = CompressionScale(x_.data(), size);
    send_.resize(static_cast<size_t>(size / 8));
    Compress(x_.data(), size, scale, send_.data(), worker_error);
    recv_.resize(send_.size());
    scales_.assign(static_cast<size_t>(world), 0.0f);
    RETURN_IF_ERROR(Finish(ctx.comm->AllToAll(send_.data(), recv_.data(), chunk / 8, DType::kUInt8)));
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(&scale, scales_.data(), 1, DType::kFloat32)));
    // The server side: this rank's chunk averaged over ranks, plus its own error, compressed again.
    const float inv_world = static_cast<float>(1.0 / static_cast<double>(world));
    c_.assign(static_cast<size_t>(chunk), 0.0f);
    for (int64_t q = 0; q < world; ++q) {
      const float s = scales_[static_cast<size_t>(q)] * inv_world;
      const uint8_t* bits = recv_.data() + q * (chunk / 8);
      for (int64_t j = 0; j < chunk; ++j) c_[j] += onebit::OnebitBit(bits, j) ? s : -s;
    }
    for (int64_t j = 0; j < chunk; ++j) c_[j] += server_error[j];
    const float server_scale = CompressionScale(c_.data(), chunk);
    mine_.resize(static_cast<size_t>(chunk / 8));
    Compress(c_.data(), chunk, server_scale, mine_.data(), server_error);
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(mine_.data(), recv_.data(), chunk / 8, DType::kUInt8)));
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(&server_scale, scales_.data(), 1, DType::kFloat32)));
    // Every rank decodes the same result: chunk r is sign * rank r's server scale.
    at = 0;
    for (size_t i = 4; i < ctx.inputs.size(); ++i) {
      float* m = ctx.input(i).data<float>();
      for (int64_t k = 0; k < ctx.input(i).numel(); ++k, ++at) {
        const float s = scales_[static_cast<size_t>(at / chunk)];
        m[k] = onebit::OnebitBit(recv_.data(), at) ? s : -s;
      }
    }
    return Status::OK();
  }

 private:
  int64_t freeze_step_ = 2;
  std::vector<float> x_, c_, scales_;
  std::vector<uint8_t> send_, recv_, mine_;  // scratch kept between steps
};

bool RegisterOnebit() {
  KernelRegistry& r = KernelRegistry::Global();
  r.Register(KernelKey{kDscDomain, ops::kOnebitMomentum, DeviceKind::kCpu, DType::kFloat32},
             MakeFactory<OnebitMomentumKernel>());
  r.Register(KernelKey{kDscDomain, ops::kOnebitAdamStep, DeviceKind::kCpu, DType::kFloat32},
             MakeFactory<OnebitAdamStepKernel>());
  r.Register(KernelKey{kDscDomain, ops::kCompressedAllReduce, DeviceKind::kCpu, DType::kFloat32},
             MakeFactory<CompressedAllReduceKernel>());
  return true;
}
[[maybe_unused]] const bool kOnebitRegistered = RegisterOnebit();

}  // namespace
}  // namespace dsc::cpu
