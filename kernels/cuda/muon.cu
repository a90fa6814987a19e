// CUDA kernels of MuonMomentum and MuonApply (ir/dsc_ops.h), twins of the CPU kernels in
// kernels/cpu/training_ops.cc: the per-element math and the Newton-Schulz iterations of
// kernels/common/muon_math.h, the GEMMs on cuBLASLt (kernels/cuda/gemm.h, float32 compute), the
// step's scalars (grad_scale, lr, skip) read on the device so no step waits for the host.
#include <cstdint>

#include "ir/dsc_ops.h"
#include "kernels/common/muon_math.h"
#include "kernels/common/optimizer_math.h"
#include "kernels/common/training_node.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/gemm.h"

namespace dsc::cuda {
namespace {

// ---- MuonMomentum ----

template <typename G, typename S>
__global__ void MuonMomentumKernel(int64_t n, const G* grad, S* m, float* update, const float* grad_scale,
                                   const uint8_t* skip, float beta, float one_minus) {
  const bool skipped = skip && *skip != 0;
  const float scale = *grad_scale;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    if (skipped) {
      update[i] = 0.0f;
      continue;
    }
    const float g = ToFloat(grad[i]);
    const S stored = FromFloat<S>(optim::MuonMomentumElement(g, scale, ToFloat(m[i]), one_minus));
    m[i] = stored;
    update[i] = optim::MuonNesterov(g, scale, ToFloat(stored), beta);
  }
}

class MuonMomentumCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    TensorView& update = ctx.output(0);
    const int64_t n = update.numel();
    for (size_t i = 1; i < 3; ++i) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "MuonMomentum"));
    if (n == 0) return Status::OK();
    DispatchFloat(node_.grad, [&](auto gt) {
      DispatchFloat(node_.state, [&](auto st) {
        using G = typename decltype(gt)::type;
        using S = typename decltype(st)::type;
        MuonMomentumKernel<<<GridFor(*r, n), kThreads, 0, r->compute>>>(
            n, ctx.input(1).data<G>(), ctx.input(2).data<S>(), update.data<float>(), ctx.input(3).data<float>(),
            SkipPtr(ctx, 4), node_.beta, node_.one_minus);
      });
    });
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  optim::MuonMomentumNode node_;
};

// ---- MuonApply ----

__global__ void ScaleKernel(int64_t n, float* dst, const float* src, float alpha) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    dst[i] = alpha * src[i];
}

__global__ void AddDiagonalKernel(int64_t n, float* q, float a) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    q[i * n + i] += a;
}

// One block: x /= ||x|| + 1e-7, the sum of squares in double as the CPU's.
__global__ void NormalizeKernel(int64_t n, float* x) {
  __shared__ double partial[32];
  __shared__ float denom;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += optim::SquareD(x[i]);
  s = WarpSumD(s);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  if (lane == 0) partial[warp] = s;
  __syncthreads();
  if (warp == 0) {
    double t = lane < warps ? partial[lane] : 0.0;
    t = WarpSumD(t);
    if (lane == 0) denom = static_cast<float>(sqrt(t)) + optim::kMuonNormEps;
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) x[i] /= denom;
}

// X (n x m) from a rows x cols matrix G, transposed when rows > cols; and back, times scale.
__global__ void LoadMatrixKernel(int64_t rows, int64_t cols, int64_t m, bool transposed, const float* g, float* x) {
  const int64_t total = rows * cols;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = k / cols, j = k % cols;
    x[transposed ? j * m + i : i * m + j] = g[k];
  }
}
__global__ void StoreMatrixKernel(int64_t rows, int64_t cols, int64_t m, bool transposed, const float* x, float scale,
                                  float* o) {
  const int64_t total = rows * cols;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = k / cols, j = k % cols;
    o[k] = x[transposed ? j * m + i : i * m + j] * scale;
  }
}

template <typename P>
__global__ void MuonApplyKernel(int64_t n, P* p, const float* o, const float* lr, const uint8_t* skip,
                                double weight_decay) {
  if (skip && *skip != 0) return;
  const float l = *lr;
  const float decay = static_cast<float>(1.0 - optim::ShortestDecimal(l) * weight_decay);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    p[i] = FromFloat<P>(optim::MuonApplyElement(ToFloat(p[i]), o[i], l, decay));
}

// optim::MuonNewtonSchulz's operations on the compute stream. The three GEMM shapes one matrix
// needs (X X^T, n x n by n x n, n x n by n x m) are built once per kernel.
class CudaMuonOps {
 public:
  void Reset(int64_t n, int64_t m) {
    n_ = n;
    m_ = m;
    xxt_.Reset(GemmShape{.trans_b = true, .m = n, .n = n, .k = m});
    nn_.Reset(GemmShape{.m = n, .n = n, .k = n});
    nx_.Reset(GemmShape{.m = n, .n = m, .k = n});
  }
  void Bind(Resources* r) { r_ = r; }
  Status Gemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b, float beta,
              float* c) {
    cuda::Gemm* g = trans_b ? &xxt_ : (n == n_ && k == n_ && m == n_) ? &nn_ : &nx_;
    const GemmShape& s = g->shape();
    if (s.trans_b != trans_b || s.m != m || s.n != n || s.k != k)
      return Internal("MuonApply: no GEMM of shape ", m, "x", n, "x", k);
    return g->Run(r_, alpha, a, b, beta, c);
  }
  Status Scale(float* dst, const float* src, float alpha, int64_t count) {
    ScaleKernel<<<GridFor(*r_, count), kThreads, 0, r_->compute>>>(count, dst, src, alpha);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }
  Status AddDiagonal(float* q, float a, int64_t n) {
    AddDiagonalKernel<<<GridFor(*r_, n), kThreads, 0, r_->compute>>>(n, q, a);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }
  Status Normalize(float* x, int64_t count) {
    NormalizeKernel<<<1, 1024, 0, r_->compute>>>(count, x);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  Resources* r_ = nullptr;
  int64_t n_ = 0, m_ = 0;
  cuda::Gemm xxt_, nn_, nx_;
};

// Bytes rounded up so the scratch regions carved one after another stay aligned.
int64_t Aligned(int64_t floats) { return (floats + 63) / 64 * 64; }

// (param, update, lr[, skip]): every rank orthogonalises the whole update, then writes its range.
// The skip flag stays on the device: the iterations run and only the write is skipped.
class MuonApplyCuda : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(node_.Init(n));
    ops_.Reset(node_.matrix.n, node_.matrix.m);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const optim::ShardRange sr, node_.Range(ctx, param.numel(), ctx.input(1).numel()));
    const optim::MuonMatrix& x = node_.matrix;
    const int64_t nm = Aligned(x.n * x.m), nn = Aligned(x.n * x.n), size = x.rows * x.cols;
    ASSIGN_OR_RETURN(void* scratch, r->Scratch(static_cast<size_t>(2 * nm + 4 * nn + Aligned(x.numel())) * sizeof(float)));
    float* base = static_cast<float*>(scratch);
    float *xs = base, *ts = xs + nm, *rs = ts + nm, *zs = rs + nn, *qs = zs + nn, *ws = qs + nn, *o = ws + nn;
    ops_.Bind(r);
    const float* g = ctx.input(1).data<float>();
    for (int64_t b = 0; b < x.batch; ++b) {
      LoadMatrixKernel<<<GridFor(*r, size), kThreads, 0, r->compute>>>(x.rows, x.cols, x.m, x.transposed, g + b * size, xs);
      DSC_CUDA_CHECK_LAUNCH();
      float* res = nullptr;
      RETURN_IF_ERROR(optim::MuonNewtonSchulz(ops_, node_.ns, node_.ns_steps, x.n, x.m, xs, ts, rs, zs, qs, ws, &res));
      StoreMatrixKernel<<<GridFor(*r, size), kThreads, 0, r->compute>>>(x.rows, x.cols, x.m, x.transposed, res, x.scale,
                                                                          o + b * size);
      DSC_CUDA_CHECK_LAUNCH();
    }
    if (sr.len == 0) return Status::OK();
    const int64_t at = node_.param_is_chunk() ? 0 : sr.offset;
    const double wd = optim::ShortestDecimal(node_.weight_decay);
    DispatchFloat(node_.param, [&](auto pt) {
      using P = typename decltype(pt)::type;
      MuonApplyKernel<<<GridFor(*r, sr.len), kThreads, 0, r->compute>>>(
          sr.len, param.data<P>() + at, o + sr.offset, ctx.input(2).data<float>(), SkipPtr(ctx, 3), wd);
    });
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  optim::MuonApplyNode node_;
  CudaMuonOps ops_;
};

// The dtypes the CPU registers these ops for (kernels/cpu/training_ops.cc).
bool RegisterMuonOps() {
  KernelRegistry& r = KernelRegistry::Global();
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    r.Register(KernelKey{kDscDomain, ops::kMuonMomentum, DeviceKind::kCuda, t}, MakeFactory<MuonMomentumCuda>());
    r.Register(KernelKey{kDscDomain, ops::kMuonApply, DeviceKind::kCuda, t}, MakeFactory<MuonApplyCuda>());
  }
  return true;
}
[[maybe_unused]] const bool kMuonOpsRegistered = RegisterMuonOps();

}  // namespace
}  // namespace dsc::cuda
