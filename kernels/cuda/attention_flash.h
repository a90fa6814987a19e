// Tiled (flash) Attention and AttentionGrad for float16/bfloat16 on tensor cores, the fast path of
// kernels/cuda/attention.cu for the common case; the reference kernels there take every other one.
//
// Forward (FlashAttention-2's scheme): a block owns 64 query rows of one (batch, head), four warps
// of 16 rows each; it walks the keys in tiles of 64, S = Q K^T on WMMA 16x16x16 tiles with float
// accumulators, an online softmax in float (running max and sum per row, the partial output
// rescaled when the max grows), then O += P V with P rounded to the input type. Under is_causal the
// tiles wholly above the diagonal are skipped. Nothing of size S x L reaches device memory.
//
// Gradient, deterministic (no atomics, so repeated runs agree bitwise, as the reference kernels do):
//   rows pass, per 64 query rows: the forward again for the row's max, sum and O, then
//     D_i = dY_i . O_i, and dQ = scale * sum_j dS_ij K_j with dS = P (dP - D), dP = dY V^T;
//   keys pass, per 64 keys of one kv head: over the group's query heads and every query tile,
//     dV = sum_i P_ij dY_i and dK = scale * sum_i dS_ij Q_i.
// dS and P are rounded to the input type before their products, as FlashAttention does; the results
// differ from the double-precision reference kernels by the input type's rounding (the kernel table,
// tests/gpu, holds half runs to 4e-2 relative).
//
// Head sizes up to 128 run, zero-padded to 32, 64 or 128 (zeros add nothing to a dot product).
#pragma once

#include <string>

#include "ir/status.h"
#include "kernels/common/attention_math.h"
#include "kernels/cuda/cuda_resources.h"

namespace dsc::cuda::flash {

// Why the flash kernels cannot run this node ("" when they can): past key/value, softcap,
// nonpad_kv_seqlen, a head size over 128 or different for K and V, a gradient of the mask, or
// more shared memory than the device lets a block have.
std::string Unsupported(const attn::AttentionSpec& sp, bool mask_grad, const Resources& r);

// T is __half or __nv_bfloat16. `mask` is attn_mask's data or null.
template <typename T>
Status Forward(Resources& r, const attn::AttentionSpec& sp, const T* q, const T* k, const T* v, const void* mask,
               T* y);

// dq is required; dk and dv may be null (not asked for).
template <typename T>
Status Backward(Resources& r, const attn::AttentionSpec& sp, const T* q, const T* k, const T* v, const void* mask,
                const T* dy, T* dq, T* dk, T* dv);

}  // namespace dsc::cuda::flash
