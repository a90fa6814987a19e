// Attention (opsets 23/24) and AttentionGrad on CUDA for float32, float16 and bfloat16, with the
// CPU kernels' per-row math (kernels/common/attention_math.h) in double, so results match
// kernels/cpu/attention.cc to rounding: one thread block per query row (rows grid-strided), each
// key's score on one thread, max and sums as fixed block reductions (repeatable runs).
//
// Memory: the forward keeps one row of L doubles per block; the gradient keeps P, dS and dZ of
// one batch index, Hq * S * L doubles each, then sums dK/dV per key
// over the group's query heads and rows in the CPU's order. These are the reference kernels: float32
// always runs them, float16/bfloat16 only where the tensor-core kernels of attention_flash.cu
// cannot (past key/value, softcap, nonpad_kv_seqlen, head sizes over 128, a mask gradient).
#include <algorithm>
#include <type_traits>

#include "ir/dsc_ops.h"
#include "kernels/common/attention_math.h"
#include "kernels/common/attention_spec.h"
#include "kernels/cuda/attention_flash.h"
#include "kernels/cuda/attention_util.cuh"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/gemm.h"

namespace dsc::cuda {
namespace {

using attn::AttentionSpec;
using attn::HeadView;
using attn::kNegInf;

constexpr int kAttnThreads = 256;

__device__ __forceinline__ double WarpMaxD(double v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Block-wide sum / max of doubles (blockDim.x == kAttnThreads); every thread gets the result.
__device__ __forceinline__ double BlockSumD(double v, double* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = WarpSumD(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.0;
  return WarpSumD(v);
}
__device__ __forceinline__ double BlockMaxD(double v, double* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = WarpMaxD(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : kNegInf;
  return WarpMaxD(v);
}

using attn_util::LoadD;
using attn_util::NonPad;

// float16/bfloat16 take the tensor-core kernels of attention_flash.cu when they can.
template <typename T>
inline constexpr bool kHalf = !std::is_same_v<T, float>;

template <typename T>
struct AttnInputs {
  const T *q, *k, *v, *pk, *pv;
  const void* mask;
  const void* nonpad;
};

// Query row (b, h, i): z[j] (biased, capped scores) for this thread's keys, then p[j] in place
// (softmax; all 0 when every key is masked). When s is given it gets the scaled scores. Returns
// whether any key is unmasked. Ends with a barrier: p is then visible to the whole block.
template <typename T>
__device__ bool ScoreRowBlock(const AttentionSpec& sp, const AttnInputs<T>& in, int64_t b, int64_t h, int64_t i,
                              double* p, double* s, double* red) {
  const T* qi = in.q + sp.q.At(b, h, i);
  const int64_t kh = sp.KvHead(h), D = sp.q.dim, L = sp.keys;
  const int64_t nonpad_b = NonPad(sp, in.nonpad, b);
  const int64_t offset = sp.CausalOffset(nonpad_b);
  const int64_t mrow = sp.has_mask ? sp.MaskRow(b, h, i) : 0;
  int any = 0;
  double mx = kNegInf;
  for (int64_t j = threadIdx.x; j < L; j += blockDim.x) {
    const double mask_value =
        sp.has_mask && j < sp.mask_len ? LoadD(in.mask, sp.mask_dtype, mrow + j * sp.mask_stride[3]) : 0.0;
    const double bias = attn::KeyBias(sp, i, j, mask_value, offset, nonpad_b);
    const T* kj = attn::KeyRow(in.k, in.pk, sp.k, sp.pk, sp.past, b, kh, j);
    double dot = 0;
    for (int64_t e = 0; e < D; ++e) dot += static_cast<double>(ToFloat(qi[e])) * ToFloat(kj[e]);
    const double sj = sp.scale * dot;
    if (s) s[j] = sj;
    const double z = attn::Capped(sp, sj) + bias;
    p[j] = z;
    if (bias != kNegInf) any = 1;
    mx = fmax(mx, z);
  }
  any = __syncthreads_or(any);
  mx = BlockMaxD(mx, red);
  double sum = 0;
  for (int64_t j = threadIdx.x; j < L; j += blockDim.x) {
    p[j] = any ? attn::SoftmaxTerm(p[j], mx) : 0.0;
    sum += p[j];
  }
  sum = BlockSumD(sum, red);
  if (any)
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) p[j] /= sum;
  __syncthreads();
  return any != 0;
}

template <typename T>
__global__ void __launch_bounds__(kAttnThreads)
    AttentionKernel(AttentionSpec sp, AttnInputs<T> in, T* y, double* rows_buf, int64_t rows) {
  __shared__ double red[32];
  double* p = rows_buf + blockIdx.x * sp.keys;
  const HeadView yv = sp.YView();
  const int64_t L = sp.keys, Dv = sp.v.dim;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t b = r / (sp.q.heads * sp.q.len), h = r / sp.q.len % sp.q.heads, i = r % sp.q.len;
    ScoreRowBlock(sp, in, b, h, i, p, nullptr, red);
    const int64_t kh = sp.KvHead(h);
    for (int64_t e = threadIdx.x; e < Dv; e += blockDim.x) {
      double acc = 0;
      for (int64_t j = 0; j < L; ++j) {
        if (p[j] == 0) continue;
        acc += p[j] * ToFloat(attn::KeyRow(in.v, in.pv, sp.v, sp.pv, sp.past, b, kh, j)[e]);
      }
      y[yv.At(b, h, i) + e] = FromFloat<T>(static_cast<float>(acc));
    }
    __syncthreads();  // p is rewritten by the next row
  }
}

// Gradient, pass 1 over the rows of batch index b: the P, dS and dZ rows, and dQ.
template <typename T>
__global__ void __launch_bounds__(kAttnThreads)
    AttentionGradRowsKernel(AttentionSpec sp, AttnInputs<T> in, const T* dy, int64_t b, T* dq, double* pbuf,
                            double* dsbuf, double* dzbuf) {
  __shared__ double red[32];
  const HeadView yv = sp.YView();
  const int64_t S = sp.q.len, L = sp.keys, Dk = sp.q.dim, Dv = sp.v.dim, rows = sp.q.heads * S;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t h = r / S, i = r % S, kh = sp.KvHead(h);
    double* p = pbuf + r * L;
    double* ds = dsbuf + r * L;  // the scores first, then dS
    double* dz = dzbuf + r * L;
    const T* dyi = dy + yv.At(b, h, i);
    T* dqi = dq + sp.q.At(b, h, i);
    if (!ScoreRowBlock(sp, in, b, h, i, p, ds, red)) {
      for (int64_t j = threadIdx.x; j < L; j += blockDim.x) {
        ds[j] = 0;
        dz[j] = 0;
      }
      for (int64_t e = threadIdx.x; e < Dk; e += blockDim.x) dqi[e] = FromFloat<T>(0.0f);
      __syncthreads();
      continue;
    }
    // dP_j = dY_i . V_j into dz (ds holds S_j) until sum_j p_j dP_j is known.
    double pdp = 0;
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) {
      double dp = 0;
      if (p[j] != 0) {
        const T* vj = attn::KeyRow(in.v, in.pv, sp.v, sp.pv, sp.past, b, kh, j);
        for (int64_t e = 0; e < Dv; ++e) dp += static_cast<double>(ToFloat(dyi[e])) * ToFloat(vj[e]);
      }
      dz[j] = dp;
      pdp += p[j] * dp;
    }
    pdp = BlockSumD(pdp, red);
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) {
      dz[j] = attn::SoftmaxGrad(p[j], dz[j], pdp);
      ds[j] = dz[j] * attn::CapGrad(sp, ds[j]) * sp.scale;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < Dk; e += blockDim.x) {
      double acc = 0;
      for (int64_t j = 0; j < L; ++j) {
        if (ds[j] == 0) continue;
        acc += ds[j] * ToFloat(attn::KeyRow(in.k, in.pk, sp.k, sp.pk, sp.past, b, kh, j)[e]);
      }
      dqi[e] = FromFloat<T>(static_cast<float>(acc));
    }
    __syncthreads();
  }
}

// Gradient, pass 2 for batch index b: dK, dV of each new key (past keys get none), summed over
// the kv head's query heads and rows in (h, i) order.
template <typename T>
__global__ void AttentionGradKeysKernel(AttentionSpec sp, const T* q, const T* dy, int64_t b, const double* pbuf,
                                        const double* dsbuf, T* dk, T* dv) {
  const HeadView yv = sp.YView();
  const int64_t S = sp.q.len, L = sp.keys, P = sp.past, Dk = sp.q.dim, Dv = sp.v.dim;
  const int64_t De = Dk > Dv ? Dk : Dv, group = sp.q.heads / sp.k.heads;
  const int64_t total = sp.k.heads * sp.k.len * De;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t e = t % De, jn = t / De % sp.k.len, kh = t / (De * sp.k.len), j = P + jn;
    double dk_acc = 0, dv_acc = 0;
    for (int64_t h = kh * group; h < (kh + 1) * group; ++h)
      for (int64_t i = 0; i < S; ++i) {
        const int64_t r = (h * S + i) * L + j;
        if (dk && e < Dk && dsbuf[r] != 0) dk_acc += dsbuf[r] * ToFloat(q[sp.q.At(b, h, i) + e]);
        if (dv && e < Dv && pbuf[r] != 0) dv_acc += pbuf[r] * ToFloat(dy[yv.At(b, h, i) + e]);
      }
    if (dk && e < Dk) dk[sp.k.At(b, kh, jn) + e] = FromFloat<T>(static_cast<float>(dk_acc));
    if (dv && e < Dv) dv[sp.v.At(b, kh, jn) + e] = FromFloat<T>(static_cast<float>(dv_acc));
  }
}

// dAttnMask (double) += dZ of batch index b, each mask element summing the (h, i) it was
// broadcast over in order; batch indices run in order, so the sum has the CPU's (b, h, i) order.
__global__ void AttentionMaskGradKernel(AttentionSpec sp, int64_t b, const double* dzbuf, double* dm) {
  const int64_t S = sp.q.len, L = sp.keys;
  for (int64_t m = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; m < sp.mask_numel;
       m += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t* md = sp.mask_dims;
    const int64_t mj = m % md[3], mi = m / md[3] % md[2], mh = m / (md[3] * md[2]) % md[1],
                  mb = m / (md[3] * md[2] * md[1]);
    if (md[0] != 1 && mb != b) continue;
    const int64_t h0 = md[1] == 1 ? 0 : mh, h1 = md[1] == 1 ? sp.q.heads : mh + 1;
    const int64_t i0 = md[2] == 1 ? 0 : mi, i1 = md[2] == 1 ? S : mi + 1;
    double acc = dm[m];
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t i = i0; i < i1; ++i) acc += dzbuf[(h * S + i) * L + mj];
    dm[m] = acc;
  }
}

Status CheckDTypes(const Node& node, size_t g, DType t) {
  for (size_t i = 0; i < node.num_inputs(); ++i) {
    const Value* v = node.input(i);
    if (!v || i == g + 3 || i == g + 6) continue;  // the mask and nonpad_kv_seqlen have their own dtypes
    if (v->type.dtype != t)
      return Unimplemented("attention input ", i, " is ", DTypeName(v->type.dtype), ", Q is ", DTypeName(t));
  }
  if (const Value* m = g + 3 < node.num_inputs() ? node.input(g + 3) : nullptr) {
    const DType d = m->type.dtype;
    if (d != DType::kBool && d != DType::kFloat32 && d != DType::kFloat16 && d != DType::kBFloat16 &&
        d != DType::kFloat64)
      return Unimplemented("attn_mask of dtype ", DTypeName(d));
  }
  if (const Value* n = g + 6 < node.num_inputs() ? node.input(g + 6) : nullptr)
    if (n->type.dtype != DType::kInt32 && n->type.dtype != DType::kInt64)
      return Unimplemented("nonpad_kv_seqlen of dtype ", DTypeName(n->type.dtype));
  return Status::OK();
}

template <typename T>
AttnInputs<T> Inputs(const AttentionSpec& sp, const KernelContext& ctx, size_t g) {
  AttnInputs<T> in{ctx.input(g).data<T>(),
                   ctx.input(g + 1).data<T>(),
                   ctx.input(g + 2).data<T>(),
                   nullptr,
                   nullptr,
                   nullptr,
                   nullptr};
  if (sp.has_mask) in.mask = ctx.input(g + 3).ptr;
  if (sp.past) in.pk = ctx.input(g + 4).data<T>(), in.pv = ctx.input(g + 5).data<T>();
  if (sp.has_nonpad) in.nonpad = ctx.input(g + 6).ptr;
  return in;
}

unsigned RowBlocks(const Resources& r, int64_t rows) {
  const int64_t cap = SmCount(r) * 8;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(rows, cap)));
}

// Copies past then new keys into present (B, Hkv, past + len, D).
template <typename T>
Status WritePresent(const KernelContext& ctx, const T* past, const T* x, HeadView pv, HeadView xv, int64_t batch,
                    int64_t past_len, T* out) {
  const int64_t T_ = past_len + xv.len, D = xv.dim, n = batch * xv.heads * T_ * D;
  return LaunchMap(ctx, n, [=] __device__(int64_t idx) {
    const int64_t e = idx % D, t = idx / D % T_, h = idx / (D * T_) % xv.heads, b = idx / (D * T_ * xv.heads);
    out[idx] = attn::KeyRow(x, past, xv, pv, past_len, b, h, t)[e];
  });
}

template <typename T>
class AttentionCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    if (node.num_outputs() > 3 && node.output(3))
      return Unimplemented("qk_matmul_output (output 3) is not supported: training graphs do not read it");
    RETURN_IF_ERROR(attn::InitAttentionSpec(sp_, node, 0));
    return CheckDTypes(node, 0, DTypeOf<T>());
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    const AttnInputs<T> in = Inputs<T>(sp_, ctx, 0);
    const int64_t rows = sp_.batch * sp_.q.heads * sp_.q.len;
    if constexpr (kHalf<T>) {
      if (rows > 0 && flash::Unsupported(sp_, false, *res).empty()) {
        RETURN_IF_ERROR(flash::Forward<T>(*res, sp_, in.q, in.k, in.v, in.mask, ctx.output(0).data<T>()));
        return WritePresents(ctx, in);
      }
    }
    if (rows > 0 && sp_.v.dim > 0) {
      const unsigned blocks = RowBlocks(*res, rows);
      ASSIGN_OR_RETURN(void* buf, res->Scratch(static_cast<size_t>(blocks) * std::max<int64_t>(sp_.keys, 1) * 8));
      AttentionKernel<T><<<blocks, kAttnThreads, 0, res->compute>>>(sp_, in, ctx.output(0).data<T>(),
                                                                    static_cast<double*>(buf), rows);
      DSC_CUDA_CHECK_LAUNCH();
    }
    return WritePresents(ctx, in);
  }

 private:
  Status WritePresents(const KernelContext& ctx, const AttnInputs<T>& in) const {
    if (ctx.has_output(1))
      RETURN_IF_ERROR(WritePresent(ctx, in.pk, in.k, sp_.pk, sp_.k, sp_.batch, sp_.past, ctx.output(1).data<T>()));
    if (ctx.has_output(2))
      RETURN_IF_ERROR(WritePresent(ctx, in.pv, in.v, sp_.pv, sp_.v, sp_.batch, sp_.past, ctx.output(2).data<T>()));
    return Status::OK();
  }

  AttentionSpec sp_;
};

// (dY, Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen) -> dQ, dK, dV[, dAttnMask]
template <typename T>
class AttentionGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    RETURN_IF_ERROR(attn::InitAttentionSpec(sp_, node, 1));
    if (node.num_outputs() > 3 && (!sp_.has_mask || sp_.mask_bool))
      return InvalidArgument("dAttnMask asked for without a float attn_mask");
    if (node.num_outputs() > 3 && node.output(3)) mask_out_dtype_ = node.output(3)->type.dtype;
    return CheckDTypes(node, 1, DTypeOf<T>());
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    const AttnInputs<T> in = Inputs<T>(sp_, ctx, 1);
    const T* dy = ctx.input(0).data<T>();
    T* dq = ctx.output(0).data<T>();
    T* dk = ctx.has_output(1) ? ctx.output(1).data<T>() : nullptr;
    T* dv = ctx.has_output(2) ? ctx.output(2).data<T>() : nullptr;
    const bool want_mask = ctx.has_output(3);
    if constexpr (kHalf<T>) {
      if (flash::Unsupported(sp_, want_mask, *res).empty())
        return flash::Backward<T>(*res, sp_, in.q, in.k, in.v, in.mask, dy, dq, dk, dv);
    }
    const int64_t rows = sp_.q.heads * sp_.q.len, L = sp_.keys;
    const size_t row_bytes = AlignUp(static_cast<size_t>(rows * L) * sizeof(double));
    const size_t dm_bytes = want_mask ? AlignUp(static_cast<size_t>(sp_.mask_numel) * sizeof(double)) : 0;
    ASSIGN_OR_RETURN(void* scratch, res->Scratch(row_bytes * 3 + dm_bytes));
    char* base = static_cast<char*>(scratch);
    double* pbuf = reinterpret_cast<double*>(base);
    double* dsbuf = reinterpret_cast<double*>(base + row_bytes);
    double* dzbuf = reinterpret_cast<double*>(base + 2 * row_bytes);
    double* dm = want_mask ? reinterpret_cast<double*>(base + 3 * row_bytes) : nullptr;
    if (want_mask) DSC_CUDA_CHECK(cudaMemsetAsync(dm, 0, static_cast<size_t>(sp_.mask_numel) * 8, res->compute));
    const int64_t De = std::max(sp_.q.dim, sp_.v.dim);
    for (int64_t b = 0; b < sp_.batch && rows > 0; ++b) {
      AttentionGradRowsKernel<T>
          <<<RowBlocks(*res, rows), kAttnThreads, 0, res->compute>>>(sp_, in, dy, b, dq, pbuf, dsbuf, dzbuf);
      DSC_CUDA_CHECK_LAUNCH();
      const int64_t keys = sp_.k.heads * sp_.k.len * De;
      if ((dk || dv) && keys > 0) {
        AttentionGradKeysKernel<T>
            <<<GridFor(*res, keys), kThreads, 0, res->compute>>>(sp_, in.q, dy, b, pbuf, dsbuf, dk, dv);
        DSC_CUDA_CHECK_LAUNCH();
      }
      if (want_mask && sp_.mask_numel > 0) {
        AttentionMaskGradKernel<<<GridFor(*res, sp_.mask_numel), kThreads, 0, res->compute>>>(sp_, b, dzbuf, dm);
        DSC_CUDA_CHECK_LAUNCH();
      }
    }
    if (want_mask)
      RETURN_IF_ERROR(ConvertDevice(res, dm, DType::kFloat64, ctx.output(3).ptr, mask_out_dtype_, sp_.mask_numel));
    return Status::OK();
  }

 private:
  AttentionSpec sp_;
  DType mask_out_dtype_ = DType::kFloat32;
};

DSC_REGISTER_CUDA_FLOATS("", "Attention", AttentionCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kAttentionGrad, AttentionGradCuda);

}  // namespace
}  // namespace dsc::cuda
