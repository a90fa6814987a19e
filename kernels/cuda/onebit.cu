// CUDA kernels of 1-bit Adam (ir/dsc_ops.h: OnebitMomentum, OnebitAdamStep) and of the 1-bit
// family's error-compensated compressed all-reduce (CompressedAllReduce), twins of
// kernels/cpu/onebit.cc: the per-element math, the sign packing and the server side's sums of
// kernels/common/onebit_math.h, the node checks of kernels/common/onebit_node.h. float32 only, as
// on the CPU.
//
// The per-parameter ops read step, lr, grad_scale and skip on the device (no step waits for the
// host); a step < 1, which the CPU reports as an error, changes nothing here. CompressedAllReduce
// has to decide on the host whether the ranks communicate, so it copies step and skip to the host
// (one synchronisation of the compute stream per call). Its packing, scales and error feedback run
// on the device, and its all_to_all and all_gathers go through KernelContext::comm on device
// buffers (NCCL across GPUs, host-staged for ranks sharing one: runtime/gpu_communicator.h). The
// result matches the CPU kernel's bit for bit except where a scale's double sum of squares,
// summed in another order (kernels/cuda/onebit_util.cuh), rounds to another float.
//
// These files are compiled without FMA contraction (kernels/CMakeLists.txt), as the CPU kernels
// are: a sign decides a whole scale's worth of an element, so the momentum must round the same.
#include <cstdint>

#include "ir/dsc_ops.h"
#include "kernels/common/onebit_math.h"
#include "kernels/common/onebit_node.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/onebit_util.cuh"
#include "kernels/cuda/row_util.cuh"
#include "runtime/communicator.h"

namespace dsc::cuda {
namespace onebit_cuda {

namespace {

// partial[block] = the block's share of sum x^2 in double; zeros when gated off.
__global__ void SquaresPartialKernel(const float* x, int64_t n, const int* gate, double* partial) {
  __shared__ double shared[32];
  double s = 0.0;
  if (!gate || *gate)
    for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) s += optim::SquareD(x[i]);
  s = BlockReduceAll(s, AddOp{}, 0.0, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// *out = the scale of the partials' sum (one block, a fixed order), 0 when gated off.
__global__ void CompressionScaleFinal(const double* partial, unsigned blocks, int64_t n, const int* gate, float* out) {
  __shared__ double shared[32];
  double s = 0.0;
  for (unsigned i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i];
  s = BlockReduceAll(s, AddOp{}, 0.0, shared);
  if (threadIdx.x == 0) *out = !gate || *gate ? onebit::OnebitCompressionScale(s, n) : 0.0f;
}

}  // namespace

Status LaunchCompressionScale(Resources& r, const float* x, int64_t n, unsigned blocks, double* partial,
                              const int* gate, float* out) {
  SquaresPartialKernel<<<blocks, kSquareThreads, 0, r.compute>>>(x, n, gate, partial);
  DSC_CUDA_CHECK_LAUNCH();
  CompressionScaleFinal<<<1, 1024, 0, r.compute>>>(partial, blocks, n, gate, out);
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

}  // namespace onebit_cuda

namespace {

using onebit::OnebitNode;
using onebit::OnebitScalars;
using onebit_cuda::SkipSet;
using onebit_cuda::ThreadCount;
using onebit_cuda::ThreadIndex;

// ---- OnebitMomentum, OnebitAdamStep ----

__global__ void OnebitMomentumKernel(int64_t n, const float* g, float* m, const int64_t* step, const float* grad_scale,
                                     const uint8_t* skip, OnebitNode a) {
  if (SkipSet(skip) || *step <= a.freeze_step) return;
  const OnebitScalars c = a.Scalars(0.0, *grad_scale);
  for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) m[i] = onebit::OnebitMoment(m[i], g[i], c);
}

// OnebitMomentum(param, grad, exp_avg, step, grad_scale[, skip]): the compressed steps' momentum.
class OnebitMomentumCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, 3, 3, 5); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    RETURN_IF_ERROR(optim::SameSize(ctx.input(2), ctx.input(1), "OnebitMomentum"));
    const int64_t n = ctx.input(2).numel();
    if (n == 0) return Status::OK();
    OnebitMomentumKernel<<<GridFor(*r, n), kThreads, 0, r->compute>>>(
        n, ctx.input(1).data<float>(), ctx.input(2).data<float>(), ctx.input(3).data<int64_t>(),
        ctx.input(4).data<float>(), SkipPtr(ctx, 5), node_);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  OnebitNode node_;
};

__global__ void OnebitAdamStepKernel(int64_t n, float* p, const float* g, float* m, float* v, const float* lr,
                                     const int64_t* step, const float* grad_scale, const uint8_t* skip, OnebitNode a) {
  const int64_t s = *step;
  if (SkipSet(skip) || s <= 1) return;  // call 1 only initialises; s < 1 is the CPU's error
  __shared__ OnebitScalars shared;
  if (threadIdx.x == 0) shared = a.Scalars(optim::ShortestDecimal(*lr), *grad_scale);
  __syncthreads();
  const OnebitScalars c = shared;
  const bool moments = s <= a.freeze_step;
  for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) {
    float mi = m[i], vi = v[i];
    if (moments) {
      mi = onebit::OnebitMoment(mi, g[i], c);
      vi = onebit::OnebitSecondMoment(vi, g[i], c);
      m[i] = mi;
      v[i] = vi;
    }
    p[i] = onebit::OnebitApply(p[i], mi, vi, c);
  }
}

// OnebitAdamStep(param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale[, skip]).
class OnebitAdamStepCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, 5, 5, 7); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t n = ctx.input(0).numel();
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "OnebitAdamStep"));
    if (n == 0) return Status::OK();
    OnebitAdamStepKernel<<<GridFor(*r, n), kThreads, 0, r->compute>>>(
        n, ctx.input(0).data<float>(), ctx.input(1).data<float>(), ctx.input(2).data<float>(),
        ctx.input(3).data<float>(), ctx.input(4).data<float>(), ctx.input(5).data<int64_t>(),
        ctx.input(6).data<float>(), SkipPtr(ctx, 7), node_);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  OnebitNode node_;
};

// ---- CompressedAllReduce ----

// error[k] = m[k] + error[k]: a member's part of x = members + worker_error (x kept in the error
// buffer, which the compression then overwrites with the new error).
__global__ void AddMemberKernel(const float* m, int64_t len, float* error) {
  for (int64_t k = ThreadIndex(); k < len; k += ThreadCount()) error[k] = m[k] + error[k];
}

// bits[b] = the signs of x[8b, 8b + 8), x[8b + k] replaced by its error x - scale * sign.
__global__ void PackSignsKernel(float* x, int64_t bytes, const float* scale, uint8_t* bits) {
  const float s = *scale;
  for (int64_t b = ThreadIndex(); b < bytes; b += ThreadCount())
    bits[b] = onebit::OnebitPackByte(x + 8 * b, s, x + 8 * b);
}

// server_error[j] += the ranks' signed scales / world for element j of this rank's chunk.
__global__ void ServerSumKernel(const uint8_t* recv, const float* scales, int64_t world, int64_t chunk,
                                float* server_error) {
  for (int64_t j = ThreadIndex(); j < chunk; j += ThreadCount())
    server_error[j] = onebit::OnebitServerSum(recv, scales, world, chunk, j) + server_error[j];
}

// m[k] = element at + k of the all-reduced buffer.
__global__ void DecodeKernel(const uint8_t* gathered, const float* server_scales, int64_t chunk, int64_t at,
                             int64_t len, float* m) {
  for (int64_t k = ThreadIndex(); k < len; k += ThreadCount())
    m[k] = onebit::OnebitDecode(gathered, server_scales, chunk, at + k);
}

// CompressedAllReduce<world, freeze_step>(worker_error, server_error, step, skip, X1..Xk): the
// members in place, as kernels/cpu/onebit.cc. x = members + worker_error (zeros past the
// members: x = worker_error there) and c = the server's sum + server_error are built in the error
// buffers themselves, which the packing turns into the new errors.
class CompressedAllReduceCuda : public OpKernel, protected onebit::CompressedAllReduceNode {
 public:
  using CompressedAllReduceNode::Init;

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    // Whether to communicate is the host's decision (every rank reaches the same one).
    int64_t step = 0;
    uint8_t skip = 0;
    DSC_CUDA_CHECK(cudaMemcpyAsync(&step, ctx.input(2).ptr, sizeof(step), cudaMemcpyDeviceToHost, r->compute));
    if (const uint8_t* s = SkipPtr(ctx, 3))
      DSC_CUDA_CHECK(cudaMemcpyAsync(&skip, s, sizeof(skip), cudaMemcpyDeviceToHost, r->compute));
    DSC_CUDA_CHECK(cudaStreamSynchronize(r->compute));
    if (skip != 0 || step <= freeze_step_) return Status::OK();
    int64_t rank = 0, world = 1;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    if (world == 1) return Status::OK();  // DeepSpeed compresses only with more than one rank
    RETURN_IF_ERROR(Sizes(ctx, world).status());
    float* worker_error = ctx.input(0).data<float>();
    float* server_error = ctx.input(1).data<float>();
    const int64_t size = ctx.input(0).numel(), chunk = ctx.input(1).numel();
    const unsigned worker_blocks = onebit_cuda::SquareBlocks(*r, size),
                   server_blocks = onebit_cuda::SquareBlocks(*r, chunk);
    ScratchCarver carve;
    const size_t send_at = carve.Add(static_cast<size_t>(size / 8)), recv_at = carve.Add(static_cast<size_t>(size / 8));
    const size_t mine_at = carve.Add(static_cast<size_t>(chunk / 8));
    const size_t scales_at = carve.Add(static_cast<size_t>(world) * sizeof(float));
    const size_t own_at = carve.Add(2 * sizeof(float));  // this rank's worker and server scales
    const size_t partial_at =
        carve.Add(static_cast<size_t>(worker_blocks > server_blocks ? worker_blocks : server_blocks) * sizeof(double));
    ASSIGN_OR_RETURN(void* scratch, r->Scratch(carve.total()));
    char* base = static_cast<char*>(scratch);
    uint8_t* send = reinterpret_cast<uint8_t*>(base + send_at);
    uint8_t* recv = reinterpret_cast<uint8_t*>(base + recv_at);
    uint8_t* mine = reinterpret_cast<uint8_t*>(base + mine_at);
    float* scales = reinterpret_cast<float*>(base + scales_at);
    float* scale = reinterpret_cast<float*>(base + own_at);
    float* server_scale = scale + 1;
    double* partial = reinterpret_cast<double*>(base + partial_at);

    // The worker side: x = members + error, compressed; signs chunked by destination rank.
    int64_t at = 0;
    for (size_t i = 4; i < ctx.inputs.size(); ++i) {
      const int64_t len = ctx.input(i).numel();
      if (len > 0) {
        AddMemberKernel<<<GridFor(*r, len), kThreads, 0, r->compute>>>(ctx.input(i).data<float>(), len,
                                                                       worker_error + at);
        DSC_CUDA_CHECK_LAUNCH();
      }
      at += len;
    }
    RETURN_IF_ERROR(
        onebit_cuda::LaunchCompressionScale(*r, worker_error, size, worker_blocks, partial, nullptr, scale));
    PackSignsKernel<<<GridFor(*r, size / 8), kThreads, 0, r->compute>>>(worker_error, size / 8, scale, send);
    DSC_CUDA_CHECK_LAUNCH();
    RETURN_IF_ERROR(Finish(ctx.comm->AllToAll(send, recv, chunk / 8, DType::kUInt8)));
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(scale, scales, 1, DType::kFloat32)));

    // The server side: this rank's chunk averaged over ranks, plus its own error, compressed again.
    ServerSumKernel<<<GridFor(*r, chunk), kThreads, 0, r->compute>>>(recv, scales, world, chunk, server_error);
    DSC_CUDA_CHECK_LAUNCH();
    RETURN_IF_ERROR(
        onebit_cuda::LaunchCompressionScale(*r, server_error, chunk, server_blocks, partial, nullptr, server_scale));
    PackSignsKernel<<<GridFor(*r, chunk / 8), kThreads, 0, r->compute>>>(server_error, chunk / 8, server_scale, mine);
    DSC_CUDA_CHECK_LAUNCH();
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(mine, recv, chunk / 8, DType::kUInt8)));
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(server_scale, scales, 1, DType::kFloat32)));

    // Every rank decodes the same result: chunk r is sign * rank r's server scale.
    at = 0;
    for (size_t i = 4; i < ctx.inputs.size(); ++i) {
      const int64_t len = ctx.input(i).numel();
      if (len > 0) {
        DecodeKernel<<<GridFor(*r, len), kThreads, 0, r->compute>>>(recv, scales, chunk, at, len,
                                                                    ctx.input(i).data<float>());
        DSC_CUDA_CHECK_LAUNCH();
      }
      at += len;
    }
    return Status::OK();
  }
};

bool RegisterOnebitCuda() {
  KernelRegistry& r = KernelRegistry::Global();
  r.Register(KernelKey{kDscDomain, ops::kOnebitMomentum, DeviceKind::kCuda, DType::kFloat32},
             MakeFactory<OnebitMomentumCuda>());
  r.Register(KernelKey{kDscDomain, ops::kOnebitAdamStep, DeviceKind::kCuda, DType::kFloat32},
             MakeFactory<OnebitAdamStepCuda>());
  r.Register(KernelKey{kDscDomain, ops::kCompressedAllReduce, DeviceKind::kCuda, DType::kFloat32},
             MakeFactory<CompressedAllReduceCuda>());
  return true;
}
[[maybe_unused]] const bool kOnebitCudaRegistered = RegisterOnebitCuda();

}  // namespace
}  // namespace dsc::cuda
