// Attention and AttentionGrad in float32 through BLAS, for the common training case (no softcap,
// no past_key/value, no nonpad_kv_seqlen, no gradient into the mask): what the CPU runs when the
// recognize pass turns an exporter's attention chain into one node. The double-precision row-by-row
// kernels in attention.cc stay the readable spec and the fallback; tests hold this path to them.
//
// Per (batch, head) and block of query rows: S = scale Q K^T (sgemm), the mask and causal bias
// added, softmax in float (max, exp, sum in double), Y = P V (sgemm). The gradient recomputes P the
// same way, then dP = dY V^T, dZ = P (dP - sum(dP P)), dV += P^T dY, dQ = scale dZ K,
// dK += scale dZ^T Q (sgemm each). Under is_causal a block reads only the keys its last row sees.
//
//   if (attn::BlasPathCovers(spec)) attn::ForwardBlas(spec, isa, in, y);
#pragma once

#include "kernels/common/attention_math.h"
#include "kernels/cpu/simd.h"

namespace dsc::attn {

// The inputs of one run (float32; the mask float32 or bool as spec.mask_bool says).
struct BlasInputs {
  const float *q = nullptr, *k = nullptr, *v = nullptr;
  const void* mask = nullptr;
};

// Whether the BLAS path computes this node (AttentionGrad: also no dAttnMask output).
bool BlasPathCovers(const AttentionSpec& sp, bool mask_grad);

void ForwardBlas(const AttentionSpec& sp, cpu::Isa isa, const BlasInputs& in, float* y);
// dk, dv may be null (not asked for).
void BackwardBlas(const AttentionSpec& sp, cpu::Isa isa, const BlasInputs& in, const float* dy, float* dq, float* dk,
                  float* dv);

// Tests: kernels created after UseReferenceForTesting(true) run the double-precision path.
void UseReferenceForTesting(bool reference);
bool ReferenceForcedForTesting();

}  // namespace dsc::attn
