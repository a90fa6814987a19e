// CPU kernels of 1-bit Adam (ir/dsc_ops.h: OnebitMomentum, OnebitAdamStep) and of its
// error-compensated compressed all-reduce (CompressedAllReduce) over KernelContext::comm: signs
// packed eight to a byte travel by all_to_all and all_gather, each rank's scale by all_gather.
// float32 only: the states and masters 1-bit Adam updates are float32 in every precision regime.
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/onebit_node.h"
#include "kernels/cpu/core_util.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"

namespace dsc::cpu {
namespace {

using onebit::OnebitNode;
using onebit::OnebitScalars;

int64_t StepOf(const KernelContext& ctx, size_t index) { return ctx.input(index).data<int64_t>()[0]; }

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

// The compression scale of x[0, len) (the sum of squares in double, in element order).
float CompressionScale(const float* x, int64_t len) {
  double sum = 0.0;
  for (int64_t i = 0; i < len; ++i) sum += static_cast<double>(x[i]) * x[i];
  return onebit::OnebitCompressionScale(sum, len);
}

// x -> its signs (packed into `bits`, packbits order) and the error x - scale*sign(x) (into
// `error`); len is a multiple of 8 (CompressedAllReduceUnit).
void Compress(const float* x, int64_t len, float scale, uint8_t* bits, float* error) {
  for (int64_t b = 0; b < len / 8; ++b) bits[b] = onebit::OnebitPackByte(x + 8 * b, scale, error + 8 * b);
}

// CompressedAllReduce<world, freeze_step>(worker_error, server_error, step, skip, X1..Xk).
class CompressedAllReduceKernel : public OpKernel, protected onebit::CompressedAllReduceNode {
 public:
  using CompressedAllReduceNode::Init;

  Status Compute(KernelContext& ctx) override {
    if (Skipped(ctx, 3) || StepOf(ctx, 2) <= freeze_step_) return Status::OK();
    int64_t rank = 0, world = 1;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    if (world == 1) return Status::OK();  // DeepSpeed compresses only with more than one rank
    RETURN_IF_ERROR(Sizes(ctx, world).status());
    float* worker_error = ctx.input(0).data<float>();
    float* server_error = ctx.input(1).data<float>();
    const int64_t size = ctx.input(0).numel(), chunk = ctx.input(1).numel();
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
    c_.resize(static_cast<size_t>(chunk));
    for (int64_t j = 0; j < chunk; ++j)
      c_[j] = onebit::OnebitServerSum(recv_.data(), scales_.data(), world, chunk, j) + server_error[j];
    const float server_scale = CompressionScale(c_.data(), chunk);
    mine_.resize(static_cast<size_t>(chunk / 8));
    Compress(c_.data(), chunk, server_scale, mine_.data(), server_error);
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(mine_.data(), recv_.data(), chunk / 8, DType::kUInt8)));
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(&server_scale, scales_.data(), 1, DType::kFloat32)));
    // Every rank decodes the same result: chunk r is sign * rank r's server scale.
    at = 0;
    for (size_t i = 4; i < ctx.inputs.size(); ++i) {
      float* m = ctx.input(i).data<float>();
      for (int64_t k = 0; k < ctx.input(i).numel(); ++k, ++at)
        m[k] = onebit::OnebitDecode(recv_.data(), scales_.data(), chunk, at);
    }
    return Status::OK();
  }

 private:
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
