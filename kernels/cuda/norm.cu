// CUDA LayerNormalization and BatchNormalization with their gradients, the twins of
// kernels/cpu/norm.cc (per-element math in kernels/common/norm_math.h, statistics in double).
//
// LayerNorm: a block per row. Its dScale/dBias: blocks summing chunks of rows for 32 columns,
// then the chunks added in order. BatchNorm: a block per channel for the statistics (and the whole gradient),
// then one thread per element. Scale, B and the statistics may be of another float dtype than X.
#include <algorithm>

#include "ir/dsc_ops.h"
#include "kernels/common/norm_math.h"
#include "kernels/common/norm_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cuda/row_util.cuh"

namespace dsc::cuda {
namespace {

using norm::BatchNormShape;

// Mean and 1/std of the row, two passes as on the CPU.
template <typename T>
__device__ __forceinline__ void RowMeanRstd(const BlockRow& g, const T* xr, int64_t cols, float eps, double* mean,
                                            double* rstd) {
  double m = 0, v = 0;
  for (int64_t j = g.lane(); j < cols; j += g.size()) m += ToFloat(xr[j]);
  m = g.Sum(m) / static_cast<double>(cols);
  for (int64_t j = g.lane(); j < cols; j += g.size()) {
    const double d = norm::Centered(ToFloat(xr[j]), m);
    v += d * d;
  }
  v = g.Sum(v) / static_cast<double>(cols);
  *mean = m;
  *rstd = norm::InvStd(v, eps);
}

template <typename T>
__global__ void LayerNormFwd(const T* x, AnyIn scale, AnyIn bias, T* y, AnyOut mean_out, AnyOut rstd_out,
                             int64_t rows, int64_t cols, float eps) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  const BlockRow g{shd, shf};
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    double m, rs;
    RowMeanRstd(g, xr, cols, eps, &m, &rs);
    for (int64_t j = g.lane(); j < cols; j += g.size())
      y[r * cols + j] = FromFloat<T>(norm::LayerNormOut(ToFloat(xr[j]), m, rs, scale[j], bias.p ? bias[j] : 0.0f));
    if (threadIdx.x == 0) {
      if (mean_out.p) mean_out.Set(r, static_cast<float>(m));
      if (rstd_out.p) rstd_out.Set(r, static_cast<float>(rs));
    }
  }
}

// dX per row; the row statistics go to `stats` (mean, rstd pairs) for the column sums.
template <typename T>
__global__ void LayerNormBwdRows(const T* dy, const T* x, AnyIn scale, T* dx, double* stats, int64_t rows,
                                 int64_t cols, float eps) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  const BlockRow g{shd, shf};
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    double m, rs;
    RowMeanRstd(g, xr, cols, eps, &m, &rs);
    if (stats && threadIdx.x == 0) stats[2 * r] = m, stats[2 * r + 1] = rs;
    if (!dx) continue;
    double mg = 0, mgx = 0;
    for (int64_t j = g.lane(); j < cols; j += g.size()) {
      const double gj = norm::LayerNormG(ToFloat(dyr[j]), scale[j]);
      mg += gj;
      mgx += gj * (ToFloat(xr[j]) - m) * rs;
    }
    mg = g.Sum(mg) / static_cast<double>(cols);
    mgx = g.Sum(mgx) / static_cast<double>(cols);
    for (int64_t j = g.lane(); j < cols; j += g.size()) {
      const double xhat = (ToFloat(xr[j]) - m) * rs;
      dx[r * cols + j] = FromFloat<T>(norm::LayerNormGradDx(norm::LayerNormG(ToFloat(dyr[j]), scale[j]), xhat, rs, mg, mgx));
    }
  }
}

// dScale/dBias: column sums over the rows. One thread per column walking every row leaves most of
// the GPU idle (768 columns, 8192 rows), so block (32, kColLanes) sums a chunk of rows for 32
// adjacent columns (coalesced), its lanes combined in a fixed order into part[s], and
// LayerNormBwdColsFinish adds the chunks in order: deterministic, in double as on the CPU.
constexpr int kColLanes = 8;
template <typename T>
__global__ void LayerNormBwdColsPartial(const T* dy, const T* x, const double* stats, double* part_ds,
                                        double* part_db, int64_t rows, int64_t cols, int64_t tiles, int64_t chunk) {
  __shared__ double lanes[2][kColLanes][33];
  const int64_t s = blockIdx.x / tiles, col = (blockIdx.x % tiles) * 32 + threadIdx.x;
  double ds = 0, db = 0;
  if (col < cols) {
    const int64_t r1 = s * chunk + chunk < rows ? s * chunk + chunk : rows;
    for (int64_t r = s * chunk + threadIdx.y; r < r1; r += kColLanes) {
      const float dyv = ToFloat(dy[r * cols + col]);
      ds += norm::LayerNormDScaleTerm(dyv, ToFloat(x[r * cols + col]), stats[2 * r], stats[2 * r + 1]);
      db += dyv;
    }
  }
  lanes[0][threadIdx.y][threadIdx.x] = ds;
  lanes[1][threadIdx.y][threadIdx.x] = db;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    for (int k = 1; k < kColLanes; ++k) ds += lanes[0][k][threadIdx.x], db += lanes[1][k][threadIdx.x];
    part_ds[s * cols + col] = ds;
    part_db[s * cols + col] = db;
  }
}

__global__ void LayerNormBwdColsFinish(const double* part_ds, const double* part_db, AnyOut dscale, AnyOut dbias,
                                       int64_t cols, int64_t splits) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < cols;
       j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    double ds = 0, db = 0;
    for (int64_t s = 0; s < splits; ++s) ds += part_ds[s * cols + j], db += part_db[s * cols + j];
    if (dscale.p) dscale.Set(j, static_cast<float>(ds));
    if (dbias.p) dbias.Set(j, static_cast<float>(db));
  }
}

template <typename T>
class LayerNormCuda : public OpKernel, protected norm::LayerNormNode {
 public:
  Status Init(const Node& node) { return LayerNormNode::Init(node, /*grad=*/false); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (s_.rows * s_.cols == 0) return Status::OK();
    ASSIGN_OR_RETURN(AnyIn scale, InAt(ctx, 1));
    ASSIGN_OR_RETURN(AnyIn bias, InAt(ctx, 2));
    ASSIGN_OR_RETURN(AnyOut mean, OutAt(ctx, 1));
    ASSIGN_OR_RETURN(AnyOut rstd, OutAt(ctx, 2));
    LayerNormFwd<T><<<RowGrid(*r, s_.rows), RowThreads(s_.cols), 0, r->compute>>>(
        ctx.input(0).data<T>(), scale, bias, ctx.output(0).data<T>(), mean, rstd, s_.rows, s_.cols, eps_);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }
};

// (dY, X, Scale) -> dX, dScale, dBias
template <typename T>
class LayerNormGradCuda : public OpKernel, protected norm::LayerNormNode {
 public:
  Status Init(const Node& node) { return LayerNormNode::Init(node, /*grad=*/true); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (s_.rows * s_.cols == 0) return Status::OK();
    if (ctx.input(1).dtype != DTypeOf<T>()) return Unimplemented("LayerNormalizationGrad with dY and X of different dtypes on CUDA");
    ASSIGN_OR_RETURN(AnyIn scale, InAt(ctx, 2));
    ASSIGN_OR_RETURN(AnyOut dscale, OutAt(ctx, 1));
    ASSIGN_OR_RETURN(AnyOut dbias, OutAt(ctx, 2));
    const T* dy = ctx.input(0).data<T>();
    const T* x = ctx.input(1).data<T>();
    T* dx = ctx.has_output(0) ? ctx.output(0).data<T>() : nullptr;
    const bool cols = dscale.p || dbias.p;
    // Chunks of >= 64 rows, enough for about 8 blocks of 256 threads per multiprocessor.
    const int64_t tiles = (s_.cols + 31) / 32;
    int64_t splits = std::max<int64_t>(1, std::min<int64_t>((SmCount(*r) * 8 + tiles - 1) / tiles, s_.rows / 64));
    const int64_t chunk = (s_.rows + splits - 1) / splits;
    splits = (s_.rows + chunk - 1) / chunk;
    ScratchCarver carve;
    const size_t at_stats = carve.Add(static_cast<size_t>(s_.rows) * 2 * sizeof(double));
    const size_t at_ds = carve.Add(static_cast<size_t>(splits * s_.cols) * sizeof(double));
    const size_t at_db = carve.Add(static_cast<size_t>(splits * s_.cols) * sizeof(double));
    char* scratch = nullptr;
    if (cols) {
      ASSIGN_OR_RETURN(void* p, r->Scratch(carve.total()));
      scratch = static_cast<char*>(p);
    }
    double* stats = cols ? reinterpret_cast<double*>(scratch + at_stats) : nullptr;
    LayerNormBwdRows<T><<<RowGrid(*r, s_.rows), RowThreads(s_.cols), 0, r->compute>>>(dy, x, scale, dx, stats, s_.rows,
                                                                                      s_.cols, eps_);
    DSC_CUDA_CHECK_LAUNCH();
    if (cols) {
      double* part_ds = reinterpret_cast<double*>(scratch + at_ds);
      double* part_db = reinterpret_cast<double*>(scratch + at_db);
      LayerNormBwdColsPartial<T><<<static_cast<unsigned>(tiles * splits), dim3(32, kColLanes), 0, r->compute>>>(
          dy, x, stats, part_ds, part_db, s_.rows, s_.cols, tiles, chunk);
      DSC_CUDA_CHECK_LAUNCH();
      LayerNormBwdColsFinish<<<GridFor(*r, s_.cols), kThreads, 0, r->compute>>>(part_ds, part_db, dscale, dbias,
                                                                                s_.cols, splits);
      DSC_CUDA_CHECK_LAUNCH();
    }
    return Status::OK();
  }
};

// Mean and biased variance of channel c over (N, S), two passes, on the block.
template <typename T>
__device__ __forceinline__ void ChannelStats(const BlockRow& g, const T* x, BatchNormShape b, int64_t c, double* mean,
                                             double* var) {
  const int64_t m = b.n * b.s;
  double s = 0, v = 0;
  for (int64_t t = g.lane(); t < m; t += g.size()) s += ToFloat(x[((t / b.s) * b.c + c) * b.s + t % b.s]);
  s = g.Sum(s) / static_cast<double>(m);
  for (int64_t t = g.lane(); t < m; t += g.size()) {
    const double d = norm::Centered(ToFloat(x[((t / b.s) * b.c + c) * b.s + t % b.s]), s);
    v += d * d;
  }
  *mean = s;
  *var = g.Sum(v) / static_cast<double>(m);
}

// Per channel: the statistics to normalise with (batch ones in training) into stats[2c], [2c+1],
// and the running outputs.
template <typename T>
__global__ void BatchNormStats(const T* x, AnyIn in_mean, AnyIn in_var, double* stats, AnyOut run_mean,
                               AnyOut run_var, BatchNormShape b, bool training, double mom) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  const BlockRow g{shd, shf};
  for (int64_t c = blockIdx.x; c < b.c; c += gridDim.x) {
    double mean = in_mean[c], var = in_var[c];
    if (training) ChannelStats(g, x, b, c, &mean, &var);
    if (threadIdx.x == 0) {
      stats[2 * c] = mean, stats[2 * c + 1] = var;
      if (run_mean.p) run_mean.Set(c, norm::RunningStat(in_mean[c], mean, mom));
      if (run_var.p) run_var.Set(c, norm::RunningStat(in_var[c], var, mom));
    }
  }
}

template <typename T>
__global__ void BatchNormApply(const T* x, AnyIn scale, AnyIn bias, const double* stats, T* y, BatchNormShape b,
                               float eps) {
  const int64_t n = b.n * b.c * b.s;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = (e / b.s) % b.c;
    const norm::Affine f = norm::BatchNormAffine(scale[c], bias[c], stats[2 * c], stats[2 * c + 1], eps);
    y[e] = FromFloat<T>(norm::BatchNormOut(ToFloat(x[e]), f));
  }
}

template <typename T>
__global__ void BatchNormBwd(const T* dy, const T* x, AnyIn scale, T* dx, AnyOut dscale, AnyOut dbias,
                             BatchNormShape b, float eps) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  const BlockRow g{shd, shf};
  const int64_t cnt = b.n * b.s;
  const double m = static_cast<double>(cnt);
  for (int64_t c = blockIdx.x; c < b.c; c += gridDim.x) {
    double mean, var;
    ChannelStats(g, x, b, c, &mean, &var);
    const double rstd = norm::InvStd(var, eps);
    double db = 0, ds = 0;
    for (int64_t t = g.lane(); t < cnt; t += g.size()) {
      const int64_t j = ((t / b.s) * b.c + c) * b.s + t % b.s;
      const float dyv = ToFloat(dy[j]);
      db += dyv;
      ds += norm::BatchNormDScaleTerm(dyv, ToFloat(x[j]), mean, rstd);
    }
    db = g.Sum(db);
    ds = g.Sum(ds);
    if (threadIdx.x == 0) {
      if (dbias.p) dbias.Set(c, static_cast<float>(db));
      if (dscale.p) dscale.Set(c, static_cast<float>(ds));
    }
    if (!dx) continue;
    const float sc = scale[c];
    for (int64_t t = g.lane(); t < cnt; t += g.size()) {
      const int64_t j = ((t / b.s) * b.c + c) * b.s + t % b.s;
      dx[j] = FromFloat<T>(norm::BatchNormGradDx(ToFloat(dy[j]), ToFloat(x[j]), sc, mean, rstd, m, db, ds));
    }
  }
}

template <typename T>
class BatchNormCuda : public OpKernel, protected norm::BatchNormNode {
 public:
  Status Init(const Node& node) { return BatchNormNode::Init(node); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (b_.c == 0) return Status::OK();
    ASSIGN_OR_RETURN(AnyIn scale, InAt(ctx, 1));
    ASSIGN_OR_RETURN(AnyIn bias, InAt(ctx, 2));
    ASSIGN_OR_RETURN(AnyIn in_mean, InAt(ctx, 3));
    ASSIGN_OR_RETURN(AnyIn in_var, InAt(ctx, 4));
    ASSIGN_OR_RETURN(AnyOut run_mean, OutAt(ctx, 1));
    ASSIGN_OR_RETURN(AnyOut run_var, OutAt(ctx, 2));
    ASSIGN_OR_RETURN(void* scratch, r->Scratch(static_cast<size_t>(b_.c) * 2 * sizeof(double)));
    double* stats = static_cast<double*>(scratch);
    const T* x = ctx.input(0).data<T>();
    // Outside training the spec forbids the running outputs; should a graph ask, they pass the inputs on.
    BatchNormStats<T><<<RowGrid(*r, b_.c), RowThreads(b_.n * b_.s), 0, r->compute>>>(
        x, in_mean, in_var, stats, run_mean, run_var, b_, training_, training_ ? momentum_ : 1.0);
    DSC_CUDA_CHECK_LAUNCH();
    const int64_t n = b_.n * b_.c * b_.s;
    if (n > 0) {
      BatchNormApply<T><<<GridFor(*r, n), kThreads, 0, r->compute>>>(x, scale, bias, stats, ctx.output(0).data<T>(), b_,
                                                                      eps_);
      DSC_CUDA_CHECK_LAUNCH();
    }
    return Status::OK();
  }
};

// (dY, X, Scale) -> dX, dScale, dBias (training mode: batch statistics)
template <typename T>
class BatchNormGradCuda : public OpKernel, protected norm::BatchNormGradNode {
 public:
  Status Init(const Node& node) { return BatchNormGradNode::Init(node); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (b_.c == 0) return Status::OK();
    if (ctx.input(1).dtype != DTypeOf<T>()) return Unimplemented("BatchNormalizationGrad with dY and X of different dtypes on CUDA");
    ASSIGN_OR_RETURN(AnyIn scale, InAt(ctx, 2));
    ASSIGN_OR_RETURN(AnyOut dscale, OutAt(ctx, 1));
    ASSIGN_OR_RETURN(AnyOut dbias, OutAt(ctx, 2));
    T* dx = ctx.has_output(0) ? ctx.output(0).data<T>() : nullptr;
    BatchNormBwd<T><<<RowGrid(*r, b_.c), RowThreads(b_.n * b_.s), 0, r->compute>>>(
        ctx.input(0).data<T>(), ctx.input(1).data<T>(), scale, dx, dscale, dbias, b_, eps_);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }
};

DSC_REGISTER_CUDA_FLOATS("", "LayerNormalization", LayerNormCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kLayerNormalizationGrad, LayerNormGradCuda);
DSC_REGISTER_CUDA_FLOATS("", "BatchNormalization", BatchNormCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kBatchNormalizationGrad, BatchNormGradCuda);

}  // namespace
}  // namespace dsc::cuda
