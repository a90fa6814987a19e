// Tiled (flash) Attention on tensor cores: the scheme is described in attention_flash.h.
//
// Shared memory per block (dynamic, opted into past 48 KB): the tiles of Q, K, V (and dY) in the
// input type with rows padded by 8 elements (no bank conflicts between the WMMA loads of
// consecutive rows), and per warp its 16 rows of float scores, of P (or dS) in the input type and
// of the float output. Lanes 2r and 2r+1 of a warp own row r of its 16 for the softmax: 32 of the
// tile's 64 columns each, the row's max and sum combined by one shuffle.
#include <mma.h>

#include <algorithm>
#include <type_traits>

#include "kernels/cuda/attention_flash.h"
#include "kernels/cuda/attention_util.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda::flash {
namespace {

namespace wmma = nvcuda::wmma;
using attn::AttentionSpec;
using attn::HeadView;

constexpr int kTile = 64;  // query rows of a block, and keys of a tile
constexpr int kWarps = kTile / 16;
constexpr int kBlock = kWarps * 32;
constexpr int kLdS = kTile + 4;  // float rows of scores (a multiple of 4 floats, as WMMA wants)
constexpr int kLdP = kTile + 8;  // input-type rows of P or dS (a multiple of 8 elements)
constexpr unsigned kFull = 0xffffffffu;

template <int Dp>
struct Ld {
  static constexpr int kT = Dp + 8;  // input-type tiles of 64 rows
  static constexpr int kO = Dp + 4;  // float rows of one warp's output or gradient
};

constexpr size_t Aligned(size_t bytes) { return (bytes + 127) / 128 * 128; }

// Hands out consecutive 128-byte aligned regions of the dynamic shared memory; the host sizes it
// with the same sequence of Take calls on a null base.
struct Carve {
  char* p;
  size_t used = 0;
  template <typename U>
  __host__ __device__ U* Take(size_t count) {
    U* r = reinterpret_cast<U*>(p + used);
    used += Aligned(count * sizeof(U));
    return r;
  }
};

template <typename T>
struct Args {
  AttentionSpec sp;
  const T *q, *k, *v, *dy;
  const void* mask;
  T *y, *dq, *dk, *dv;
  float *lse, *dd;  // per query row (b, h, i): log-sum-exp of the scores, and dY . Y
  float scale;
  bool vec;  // 16-byte loads: head size and every row offset a multiple of 8 elements
};

// The regions each kernel takes, in order (device and host agree through Carve).
template <typename T, int Dp>
struct ForwardSmem {
  T *qs, *ks, *vs, *ph;
  float *sf, *of;
  __host__ __device__ explicit ForwardSmem(Carve& c) {
    qs = c.Take<T>(kTile * Ld<Dp>::kT);
    ks = c.Take<T>(kTile * Ld<Dp>::kT);
    vs = c.Take<T>(kTile * Ld<Dp>::kT);
    sf = c.Take<float>(kWarps * 16 * kLdS);
    ph = c.Take<T>(kWarps * 16 * kLdP);
    of = c.Take<float>(kWarps * 16 * Ld<Dp>::kO);
  }
};
template <typename T, int Dp>
struct RowsSmem : ForwardSmem<T, Dp> {
  T* dos;
  float* sf2;
  __host__ __device__ explicit RowsSmem(Carve& c) : ForwardSmem<T, Dp>(c) {
    dos = c.Take<T>(kTile * Ld<Dp>::kT);
    sf2 = c.Take<float>(kWarps * 16 * kLdS);
  }
};
template <typename T, int Dp>
struct KeysSmem {
  T *ks, *vs, *qs, *dos, *ph, *ph2;
  float *sf, *lse, *dd;  // sf: per warp two 16 x kLdS score blocks, later its gradient rows
  __host__ __device__ explicit KeysSmem(Carve& c) {
    ks = c.Take<T>(kTile * Ld<Dp>::kT);
    vs = c.Take<T>(kTile * Ld<Dp>::kT);
    qs = c.Take<T>(kTile * Ld<Dp>::kT);
    dos = c.Take<T>(kTile * Ld<Dp>::kT);
    ph = c.Take<T>(kWarps * 16 * kLdP);
    ph2 = c.Take<T>(kWarps * 16 * kLdP);
    sf = c.Take<float>(kWarps * 2 * 16 * kLdS);
    lse = c.Take<float>(kTile);
    dd = c.Take<float>(kTile);
  }
};
static_assert(16 * (128 + 4) <= 2 * 16 * kLdS, "a warp's dK/dV rows fit in its two score blocks");

template <typename S>
size_t SmemBytes() {
  Carve c{nullptr};
  S s(c);
  (void)s;
  return c.used;
}

__device__ __forceinline__ float NegInf() { return -INFINITY; }

// Rows t0..t0+63 of head (b, h) of x into dst, zeros past `limit` rows and past D columns.
template <typename T, int Dp>
__device__ void LoadTile(T* dst, const T* x, const HeadView& hv, int64_t b, int64_t h, int64_t t0, int64_t limit,
                         int D, bool vec) {
  constexpr int ld = Ld<Dp>::kT;
  if (vec) {
    constexpr int kChunks = Dp / 8;
    for (int idx = threadIdx.x; idx < kTile * kChunks; idx += blockDim.x) {
      const int r = idx / kChunks, c = idx % kChunks * 8;
      uint4 val = make_uint4(0, 0, 0, 0);
      if (t0 + r < limit && c < D) val = *reinterpret_cast<const uint4*>(x + hv.At(b, h, t0 + r) + c);
      *reinterpret_cast<uint4*>(dst + r * ld + c) = val;
    }
  } else {
    for (int idx = threadIdx.x; idx < kTile * Dp; idx += blockDim.x) {
      const int r = idx / Dp, c = idx % Dp;
      dst[r * ld + c] = t0 + r < limit && c < D ? x[hv.At(b, h, t0 + r) + c] : FromFloat<T>(0.0f);
    }
  }
}

// The additive bias of key j for query row (b, h, i): attention_math.h's KeyBias in float, for the
// cases the flash path takes (no past, no padding lengths); keys past the end are masked.
__device__ __forceinline__ float Bias(const AttentionSpec& sp, const void* mask, int64_t b, int64_t h, int64_t i,
                                      int64_t j) {
  if (j >= sp.keys || (sp.causal && j > i)) return NegInf();
  if (!sp.has_mask) return 0.0f;
  if (j >= sp.mask_len) return NegInf();
  const double m = attn_util::LoadD(mask, sp.mask_dtype, sp.MaskRow(b, h, i) + j * sp.mask_stride[3]);
  return sp.mask_bool ? (m != 0 ? 0.0f : NegInf()) : static_cast<float>(m);
}

// out (16 x 64 floats, ld kLdS) = A B^T: A is 16 rows of Dp at a, B 64 rows of Dp at bt (both ld kT).
template <typename T, int Dp>
__device__ void MulABt(const T* a, const T* bt, float* out) {
#pragma unroll
  for (int n = 0; n < kTile / 16; ++n) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
#pragma unroll
    for (int kk = 0; kk < Dp / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
      wmma::load_matrix_sync(fa, a + kk * 16, Ld<Dp>::kT);
      wmma::load_matrix_sync(fb, bt + n * 16 * Ld<Dp>::kT + kk * 16, Ld<Dp>::kT);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(out + n * 16, acc, kLdS, wmma::mem_row_major);
  }
}

template <int Dp>
using Accs = wmma::fragment<wmma::accumulator, 16, 16, 16, float>[Dp / 16];

// acc += P B: P is 16 x 64 at p (ld kLdP), B 64 rows of Dp at b (ld kT).
template <typename T, int Dp>
__device__ void MulAccAB(const T* p, const T* b, Accs<Dp>& acc) {
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
    wmma::load_matrix_sync(fa, p + kk * 16, kLdP);
#pragma unroll
    for (int dn = 0; dn < Dp / 16; ++dn) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
      wmma::load_matrix_sync(fb, b + kk * 16 * Ld<Dp>::kT + dn * 16, Ld<Dp>::kT);
      wmma::mma_sync(acc[dn], fa, fb, acc[dn]);
    }
  }
}

// out (16 x Dp floats, ld kO) += P B, through the accumulators.
template <typename T, int Dp>
__device__ void MulAccABShared(const T* p, const T* b, float* out) {
  Accs<Dp> acc;
#pragma unroll
  for (int dn = 0; dn < Dp / 16; ++dn) wmma::load_matrix_sync(acc[dn], out + dn * 16, Ld<Dp>::kO, wmma::mem_row_major);
  MulAccAB<T, Dp>(p, b, acc);
#pragma unroll
  for (int dn = 0; dn < Dp / 16; ++dn) wmma::store_matrix_sync(out + dn * 16, acc[dn], Ld<Dp>::kO, wmma::mem_row_major);
}

template <int Dp>
__device__ void ZeroAccs(Accs<Dp>& acc) {
#pragma unroll
  for (int dn = 0; dn < Dp / 16; ++dn) wmma::fill_fragment(acc[dn], 0.0f);
}

// One past the last key tile the block's 64 rows from q0 can see.
__device__ __forceinline__ int64_t KeyEnd(const AttentionSpec& sp, int64_t q0) {
  return sp.causal ? std::min<int64_t>(sp.keys, q0 + kTile) : sp.keys;
}

// The forward over the key tiles for the block's query rows q0.. (Q in s.qs): leaves each warp's
// unnormalised output in its rows of s.of, and in every lane its row's running max m and sum l.
template <typename T, int Dp>
__device__ void ForwardRows(const Args<T>& a, const ForwardSmem<T, Dp>& s, int64_t b, int64_t h, int64_t q0, float& m,
                            float& l) {
  const AttentionSpec& sp = a.sp;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
  const int64_t kh = sp.KvHead(h), S = sp.q.len, i = q0 + warp * 16 + r, first = q0 + warp * 16;
  float* sf = s.sf + warp * 16 * kLdS;
  T* ph = s.ph + warp * 16 * kLdP;
  float* of = s.of + warp * 16 * Ld<Dp>::kO;
  for (int idx = lane; idx < 16 * Ld<Dp>::kO; idx += 32) of[idx] = 0.0f;
  m = NegInf(), l = 0.0f;
  for (int64_t k0 = 0; k0 < KeyEnd(sp, q0); k0 += kTile) {
    __syncthreads();  // every warp is done with the previous K and V tiles
    LoadTile<T, Dp>(s.ks, a.k, sp.k, b, kh, k0, sp.k.len, sp.q.dim, a.vec);
    LoadTile<T, Dp>(s.vs, a.v, sp.v, b, kh, k0, sp.v.len, sp.q.dim, a.vec);
    __syncthreads();
    if (first >= S || (sp.causal && k0 > first + 15)) continue;  // the warp's rows see none of these keys
    MulABt<T, Dp>(s.qs + warp * 16 * Ld<Dp>::kT, s.ks, sf);
    __syncwarp();
    float* srow = sf + r * kLdS;
    float mx = NegInf();
    for (int c = half * 32; c < half * 32 + 32; ++c) {
      const float z = i < S ? srow[c] * a.scale + Bias(sp, a.mask, b, h, i, k0 + c) : NegInf();
      srow[c] = z;
      mx = fmaxf(mx, z);
    }
    mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
    const float mnew = fmaxf(m, mx);
    const float corr = mnew == NegInf() ? 1.0f : expf(m - mnew);
    float sum = 0.0f;
    for (int c = half * 32; c < half * 32 + 32; ++c) {
      const float p = srow[c] == NegInf() ? 0.0f : expf(srow[c] - mnew);
      ph[r * kLdP + c] = FromFloat<T>(p);
      sum += p;
    }
    sum += __shfl_xor_sync(kFull, sum, 1);
    l = l * corr + sum;
    m = mnew;
    if (corr != 1.0f)
      for (int d = half * (Dp / 2); d < (half + 1) * (Dp / 2); ++d) of[r * Ld<Dp>::kO + d] *= corr;
    __syncwarp();
    MulAccABShared<T, Dp>(ph, s.vs, of);
    __syncwarp();
  }
}

template <typename T, int Dp>
__global__ void __launch_bounds__(kBlock) ForwardKernel(Args<T> a) {
  extern __shared__ __align__(128) char smem[];
  Carve c{smem};
  const ForwardSmem<T, Dp> s(c);
  const AttentionSpec& sp = a.sp;
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = static_cast<int64_t>(blockIdx.x) * kTile;
  LoadTile<T, Dp>(s.qs, a.q, sp.q, b, h, q0, sp.q.len, sp.q.dim, a.vec);
  __syncthreads();
  float m, l;
  ForwardRows<T, Dp>(a, s, b, h, q0, m, l);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
  const int64_t i = q0 + warp * 16 + r;
  __syncwarp();
  if (i >= sp.q.len) return;
  const float inv = l > 0 ? 1.0f / l : 0.0f;  // a row with every key masked is 0
  const float* orow = s.of + (warp * 16 + r) * Ld<Dp>::kO;
  T* yi = a.y + sp.YView().At(b, h, i);
  for (int d = half * (Dp / 2); d < (half + 1) * (Dp / 2) && d < sp.q.dim; ++d) yi[d] = FromFloat<T>(orow[d] * inv);
}

// Gradient, rows pass: per 64 query rows, log-sum-exp and D = dY . Y into a.lse/a.dd, then dQ.
template <typename T, int Dp>
__global__ void __launch_bounds__(kBlock) RowsKernel(Args<T> a) {
  extern __shared__ __align__(128) char smem[];
  Carve c{smem};
  const RowsSmem<T, Dp> s(c);
  const AttentionSpec& sp = a.sp;
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = static_cast<int64_t>(blockIdx.x) * kTile, S = sp.q.len;
  LoadTile<T, Dp>(s.qs, a.q, sp.q, b, h, q0, S, sp.q.dim, a.vec);
  LoadTile<T, Dp>(s.dos, a.dy, sp.YView(), b, h, q0, S, sp.q.dim, a.vec);
  __syncthreads();
  float m, l;
  ForwardRows<T, Dp>(a, s, b, h, q0, m, l);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
  const int64_t i = q0 + warp * 16 + r, first = q0 + warp * 16, kh = sp.KvHead(h);
  float* of = s.of + warp * 16 * Ld<Dp>::kO;
  __syncwarp();
  float di = 0.0f;
  for (int d = half * (Dp / 2); d < (half + 1) * (Dp / 2); ++d)
    di += ToFloat(s.dos[(warp * 16 + r) * Ld<Dp>::kT + d]) * of[r * Ld<Dp>::kO + d];
  di += __shfl_xor_sync(kFull, di, 1);
  di = l > 0 ? di / l : 0.0f;
  const float lse = l > 0 ? m + logf(l) : NegInf();
  if (half == 0 && i < S) {
    const int64_t row = (b * sp.q.heads + h) * S + i;
    a.lse[row] = lse;
    a.dd[row] = di;
  }
  float* sf = s.sf + warp * 16 * kLdS;
  float* sf2 = s.sf2 + warp * 16 * kLdS;
  T* ph = s.ph + warp * 16 * kLdP;
  Accs<Dp> dq;
  ZeroAccs<Dp>(dq);
  for (int64_t k0 = 0; k0 < KeyEnd(sp, q0); k0 += kTile) {
    __syncthreads();
    LoadTile<T, Dp>(s.ks, a.k, sp.k, b, kh, k0, sp.k.len, sp.q.dim, a.vec);
    LoadTile<T, Dp>(s.vs, a.v, sp.v, b, kh, k0, sp.v.len, sp.q.dim, a.vec);
    __syncthreads();
    if (first >= S || (sp.causal && k0 > first + 15)) continue;
    MulABt<T, Dp>(s.qs + warp * 16 * Ld<Dp>::kT, s.ks, sf);    // S = Q K^T
    MulABt<T, Dp>(s.dos + warp * 16 * Ld<Dp>::kT, s.vs, sf2);  // dP = dY V^T
    __syncwarp();
    for (int c = half * 32; c < half * 32 + 32; ++c) {
      const float z = i < S ? sf[r * kLdS + c] * a.scale + Bias(sp, a.mask, b, h, i, k0 + c) : NegInf();
      const float p = z == NegInf() || lse == NegInf() ? 0.0f : expf(z - lse);
      ph[r * kLdP + c] = FromFloat<T>(p * (sf2[r * kLdS + c] - di) * a.scale);
    }
    __syncwarp();
    MulAccAB<T, Dp>(ph, s.ks, dq);  // dQ += dS K
  }
#pragma unroll
  for (int dn = 0; dn < Dp / 16; ++dn) wmma::store_matrix_sync(of + dn * 16, dq[dn], Ld<Dp>::kO, wmma::mem_row_major);
  __syncwarp();
  if (i >= S) return;
  T* dqi = a.dq + sp.q.At(b, h, i);
  for (int d = half * (Dp / 2); d < (half + 1) * (Dp / 2) && d < sp.q.dim; ++d)
    dqi[d] = FromFloat<T>(of[r * Ld<Dp>::kO + d]);
}

// Gradient, keys pass: per 64 keys of one kv head, dK and dV over the group's query heads.
template <typename T, int Dp>
__global__ void __launch_bounds__(kBlock) KeysKernel(Args<T> a) {
  extern __shared__ __align__(128) char smem[];
  Carve c{smem};
  const KeysSmem<T, Dp> s(c);
  const AttentionSpec& sp = a.sp;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
  const int64_t b = blockIdx.z, kh = blockIdx.y, k0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t S = sp.q.len, L = sp.k.len, first = k0 + warp * 16, j = first + r;
  const int64_t group = sp.q.heads / sp.k.heads;
  const HeadView yv = sp.YView();
  LoadTile<T, Dp>(s.ks, a.k, sp.k, b, kh, k0, L, sp.q.dim, a.vec);
  LoadTile<T, Dp>(s.vs, a.v, sp.v, b, kh, k0, L, sp.q.dim, a.vec);
  float* sf = s.sf + warp * 2 * 16 * kLdS;
  float* sf2 = sf + 16 * kLdS;
  T* ph = s.ph + warp * 16 * kLdP;
  T* ph2 = s.ph2 + warp * 16 * kLdP;
  Accs<Dp> dk, dv;
  ZeroAccs<Dp>(dk);
  ZeroAccs<Dp>(dv);
  // Under is_causal only rows i >= k0 see these keys.
  const int64_t q_start = sp.causal ? k0 / kTile * kTile : 0;
  for (int64_t h = kh * group; h < (kh + 1) * group; ++h)
    for (int64_t q0 = q_start; q0 < S; q0 += kTile) {
      __syncthreads();
      LoadTile<T, Dp>(s.qs, a.q, sp.q, b, h, q0, S, sp.q.dim, a.vec);
      LoadTile<T, Dp>(s.dos, a.dy, yv, b, h, q0, S, sp.q.dim, a.vec);
      for (int t = threadIdx.x; t < kTile; t += blockDim.x) {
        const int64_t row = (b * sp.q.heads + h) * S + q0 + t;
        s.lse[t] = q0 + t < S ? a.lse[row] : NegInf();
        s.dd[t] = q0 + t < S ? a.dd[row] : 0.0f;
      }
      __syncthreads();
      if (first >= L || (sp.causal && first > q0 + kTile - 1)) continue;
      MulABt<T, Dp>(s.ks + warp * 16 * Ld<Dp>::kT, s.qs, sf);    // S^T = K Q^T
      MulABt<T, Dp>(s.vs + warp * 16 * Ld<Dp>::kT, s.dos, sf2);  // dP^T = V dY^T
      __syncwarp();
      for (int c = half * 32; c < half * 32 + 32; ++c) {
        const int64_t i = q0 + c;
        const float z = j < L && i < S ? sf[r * kLdS + c] * a.scale + Bias(sp, a.mask, b, h, i, j) : NegInf();
        const float p = z == NegInf() || s.lse[c] == NegInf() ? 0.0f : expf(z - s.lse[c]);
        ph[r * kLdP + c] = FromFloat<T>(p);
        ph2[r * kLdP + c] = FromFloat<T>(p * (sf2[r * kLdS + c] - s.dd[c]) * a.scale);
      }
      __syncwarp();
      MulAccAB<T, Dp>(ph, s.dos, dv);  // dV += P^T dY
      MulAccAB<T, Dp>(ph2, s.qs, dk);  // dK += dS^T Q
    }
  // Each gradient through the warp's score rows (16 x kO floats fit in them) to global memory.
  for (int which = 0; which < 2; ++which) {
    T* out = which == 0 ? a.dk : a.dv;
    if (!out) continue;
    __syncwarp();
#pragma unroll
    for (int dn = 0; dn < Dp / 16; ++dn)
      wmma::store_matrix_sync(sf + dn * 16, which == 0 ? dk[dn] : dv[dn], Ld<Dp>::kO, wmma::mem_row_major);
    __syncwarp();
    if (j < L) {
      T* row = out + (which == 0 ? sp.k : sp.v).At(b, kh, j);
      for (int d = half * (Dp / 2); d < (half + 1) * (Dp / 2) && d < sp.q.dim; ++d)
        row[d] = FromFloat<T>(sf[r * Ld<Dp>::kO + d]);
    }
  }
}

int PaddedDim(int64_t d) { return d <= 32 ? 32 : d <= 64 ? 64 : 128; }

// fn(std::integral_constant<int, PaddedDim(d)>{}): the kernels' head size as a template argument.
template <typename Fn>
Status WithPaddedDim(int64_t d, Fn fn) {
  switch (PaddedDim(d)) {
    case 32:
      return fn(std::integral_constant<int, 32>{});
    case 64:
      return fn(std::integral_constant<int, 64>{});
    default:
      return fn(std::integral_constant<int, 128>{});
  }
}

bool Aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }
bool Rows8(const HeadView& v) { return v.sb % 8 == 0 && v.sh % 8 == 0 && v.st % 8 == 0; }

bool Vectorizable(const AttentionSpec& sp, std::initializer_list<const void*> ptrs) {
  if (sp.q.dim % 8 != 0 || !Rows8(sp.q) || !Rows8(sp.k) || !Rows8(sp.v) || !Rows8(sp.YView())) return false;
  for (const void* p : ptrs)
    if (!Aligned16(p)) return false;
  return true;
}

// The most shared memory a block of the gradient's passes takes (the forward takes less); both
// half types are two bytes.
template <int Dp>
size_t LargestSmem() {
  return std::max(SmemBytes<RowsSmem<half, Dp>>(), SmemBytes<KeysSmem<half, Dp>>());
}

template <typename Kernel, typename T>
Status Launch(Resources& r, Kernel kernel, dim3 grid, size_t bytes, const Args<T>& args) {
  DSC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  kernel<<<grid, kBlock, bytes, r.compute>>>(args);
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

template <typename T, int Dp>
Status RunForward(Resources& r, const Args<T>& args) {
  const AttentionSpec& sp = args.sp;
  const dim3 grid(static_cast<unsigned>((sp.q.len + kTile - 1) / kTile), static_cast<unsigned>(sp.q.heads),
                  static_cast<unsigned>(sp.batch));
  return Launch(r, ForwardKernel<T, Dp>, grid, SmemBytes<ForwardSmem<T, Dp>>(), args);
}

template <typename T, int Dp>
Status RunBackward(Resources& r, const Args<T>& args) {
  const AttentionSpec& sp = args.sp;
  const dim3 rows(static_cast<unsigned>((sp.q.len + kTile - 1) / kTile), static_cast<unsigned>(sp.q.heads),
                  static_cast<unsigned>(sp.batch));
  RETURN_IF_ERROR(Launch(r, RowsKernel<T, Dp>, rows, SmemBytes<RowsSmem<T, Dp>>(), args));
  if (!args.dk && !args.dv) return Status::OK();
  const dim3 keys(static_cast<unsigned>((sp.k.len + kTile - 1) / kTile), static_cast<unsigned>(sp.k.heads),
                  static_cast<unsigned>(sp.batch));
  return Launch(r, KeysKernel<T, Dp>, keys, SmemBytes<KeysSmem<T, Dp>>(), args);
}

}  // namespace

std::string Unsupported(const AttentionSpec& sp, bool mask_grad, const Resources& r) {
  if (sp.past) return "past_key/past_value";
  if (sp.softcap > 0) return "softcap";
  if (sp.has_nonpad) return "nonpad_kv_seqlen";
  if (mask_grad) return "a gradient of attn_mask";
  if (sp.q.dim != sp.v.dim || sp.q.dim > 128 || sp.q.dim < 1) return "a head size over 128, or V's unlike K's";
  if (sp.q.heads > 65535 || sp.batch > 65535) return "more than 65535 heads or batch entries";
  size_t smem = 0;
  (void)WithPaddedDim(sp.q.dim, [&](auto dp) {
    smem = LargestSmem<decltype(dp)::value>();
    return Status::OK();
  });
  if (smem > r.max_shared_optin) return "more shared memory than the device has";
  return "";
}

template <typename T>
Status Forward(Resources& r, const AttentionSpec& sp, const T* q, const T* k, const T* v, const void* mask, T* y) {
  if (sp.q.len == 0) return Status::OK();
  Args<T> args{sp, q, k, v, nullptr, mask, y, nullptr, nullptr, nullptr, nullptr, nullptr,
               static_cast<float>(sp.scale), Vectorizable(sp, {q, k, v})};
  return WithPaddedDim(sp.q.dim, [&](auto dp) { return RunForward<T, decltype(dp)::value>(r, args); });
}

template <typename T>
Status Backward(Resources& r, const AttentionSpec& sp, const T* q, const T* k, const T* v, const void* mask,
                const T* dy, T* dq, T* dk, T* dv) {
  if (sp.q.len == 0) {  // no rows: dK and dV are 0
    for (auto [out, view] : {std::pair{dk, sp.k}, std::pair{dv, sp.v}})
      if (out) DSC_CUDA_CHECK(cudaMemsetAsync(out, 0, sp.batch * view.sb * sizeof(T), r.compute));
    return Status::OK();
  }
  const size_t rows = static_cast<size_t>(sp.batch * sp.q.heads * sp.q.len);
  ASSIGN_OR_RETURN(void* scratch, r.Scratch(2 * rows * sizeof(float)));
  float* lse = static_cast<float*>(scratch);
  Args<T> args{sp, q, k, v, dy, mask, nullptr, dq, dk, dv, lse, lse + rows,
               static_cast<float>(sp.scale), Vectorizable(sp, {q, k, v, dy})};
  return WithPaddedDim(sp.q.dim, [&](auto dp) { return RunBackward<T, decltype(dp)::value>(r, args); });
}

#define DSC_FLASH_INSTANTIATE(T)                                                                                  \
  template Status Forward<T>(Resources&, const AttentionSpec&, const T*, const T*, const T*, const void*, T*);   \
  template Status Backward<T>(Resources&, const AttentionSpec&, const T*, const T*, const T*, const void*,        \
                              const T*, T*, T*, T*);
DSC_FLASH_INSTANTIATE(half)
DSC_FLASH_INSTANTIATE(bf16)

}  // namespace dsc::cuda::flash
