// The math of MuonMomentum and MuonApply (ir/dsc_ops.h), DeepSpeed's Muon update for its use_muon
// parameters; the per-element parts shared by the CPU kernels (kernels/cpu/training_ops.cc) and
// their CUDA twins (kernels/cuda/muon.cu), and the Newton-Schulz iterations written once over a small
// set of matrix operations that each device provides (a GEMM, a scaled copy, a diagonal add,
// a Frobenius normalisation).
//
// What this reproduces, from DeepSpeed (deepspeedai/DeepSpeed at edaa72212,
// deepspeed/runtime/zero/muon/original_muon.py):
//  - muon_update (:146-164): momentum.lerp_(grad, 1 - beta); update = grad.lerp_(momentum, beta)
//    (nesterov, the only form the engine builds); a 4-D update is viewed as (dims[0], -1); the
//    orthogonalised update times max(1, grad.size(-2) / grad.size(-1))**0.5 (the *gradient's*
//    last two dims, also for a 4-D one).
//  - zeropower_via_newtonschulz5 (:36-65, ns_method "standard"): (a, b, c) = (3.4445, -4.7750,
//    2.0315); X = G, transposed when rows > cols; X /= ||X||_F + 1e-7; `steps` times A = X X^T,
//    B = b A + c A A, X = a X + B X; transposed back.
//  - zeropower_via_gram_newtonschulz (:68-139, "gram", the default): the same normalised X
//    (n x m, n <= m); square: the standard loop; else R = X X^T and for i < steps: at i = 2
//    (restart) X = Q X, R = X X^T, Q = none; Z = b R + c R R; Q = Z + a I when none, else
//    Q = a Q + Z Q; unless i is the last or the one before the restart, RZ = a R + Z R and
//    R = a RZ + Z RZ; finally X = Q X.
//  - MuonWithAuxAdam.step (:353-354): p.mul_(1 - lr * weight_decay); p.add_(update, alpha=-lr).
// DeepSpeed runs the iterations in bfloat16 ("standard") or float16 ("gram") where the
// accelerator supports them and in float32 otherwise; these run in float32 (the master's dtype),
// which is what DeepSpeed computes on an accelerator without half support.
// torch.lerp(self, end, w) rounds as self + w*(end - self) for |w| < 0.5, else
// end - (end - self)*(1 - w); MuonLerp does the same in float.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "ir/status.h"
#include "kernels/common/hd.h"

namespace dsc::optim {

inline constexpr float kMuonA = 3.4445f, kMuonB = -4.7750f, kMuonC = 2.0315f;
inline constexpr float kMuonNormEps = 1e-7f;
// Gram Newton-Schulz restarts (X = Q X, R recomputed) at this iteration.
inline constexpr int kMuonGramRestart = 2;

DSC_HD float MuonLerp(float self, float end, float w) {
  return ::fabsf(w) < 0.5f ? self + w * (end - self) : end - (end - self) * (1.0f - w);
}

// One element of MuonMomentum: the new momentum (rounded by the caller to its dtype), then the
// Nesterov update from the stored momentum. `one_minus` = float(1 - beta) as Python computes it.
DSC_HD float MuonMomentumElement(float grad, float grad_scale, float m, float one_minus) {
  return MuonLerp(m, grad * grad_scale, one_minus);
}
DSC_HD float MuonNesterov(float grad, float grad_scale, float m_stored, float beta) {
  return MuonLerp(grad * grad_scale, m_stored, beta);
}

// p * (1 - lr*wd) - lr * o, o the scaled orthogonalised update (float, as torch's mul_/add_).
// `decay` = float(1 - lr * weight_decay) computed in double as Python does.
DSC_HD float MuonApplyElement(float p, float o, float lr, float decay) { return p * decay - lr * o; }

// How MuonApply views its update of `dims` (>= 2 of them): `batch` matrices of rows x cols,
// iterated on as n x m with n = min(rows, cols) (transposed when rows > cols), and the factor
// sqrt(max(1, dims[-2] / dims[-1])) muon_update multiplies the result by.
struct MuonMatrix {
  int64_t batch = 1, rows = 0, cols = 0;
  int64_t n = 0, m = 0;
  bool transposed = false;
  float scale = 1.0f;
  int64_t numel() const { return batch * rows * cols; }
};

inline MuonMatrix MuonMatrixOf(const std::vector<int64_t>& dims) {
  MuonMatrix x;
  const size_t r = dims.size();
  if (r < 2) return x;
  if (r == 4) {  // conv filters: update.view(len(update), -1)
    x.rows = dims[0];
    x.cols = dims[1] * dims[2] * dims[3];
  } else {  // torch's batched matmul over the leading dims
    for (size_t i = 0; i + 2 < r; ++i) x.batch *= dims[i];
    x.rows = dims[r - 2];
    x.cols = dims[r - 1];
  }
  x.transposed = x.rows > x.cols;
  x.n = x.transposed ? x.cols : x.rows;
  x.m = x.transposed ? x.rows : x.cols;
  const double ratio = static_cast<double>(dims[r - 2]) / static_cast<double>(dims[r - 1]);
  x.scale = static_cast<float>(std::sqrt(ratio > 1.0 ? ratio : 1.0));
  return x;
}

enum class MuonNs { kStandard, kGram };

// Newton-Schulz on one normalised-to-be matrix X (n x m, row-major, n <= m) in `x`, with
// scratch `t` (n x m) and r, z, q, w (n x n each). Ops provides, all row-major float on its device:
//   Status Gemm(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
//               const float* B, float beta, float* C)   C = alpha A op(B) + beta C; A is M x K,
//                                                       B is K x N, or N x K when trans_b
//   Status Scale(float* dst, const float* src, float alpha, int64_t count)   dst = alpha src
//   Status AddDiagonal(float* q, float a, int64_t n)                         q += a I
//   Status Normalize(float* x, int64_t count)                                x /= ||x|| + 1e-7
// Returns (through *result) the buffer holding the orthogonalised X: x or t.
template <typename Ops>
Status MuonNewtonSchulz(Ops& o, MuonNs method, int steps, int64_t n, int64_t m, float* x, float* t, float* r, float* z,
                        float* q, float* w, float** result) {
  const float a = kMuonA, b = kMuonB, c = kMuonC;
  RETURN_IF_ERROR(o.Normalize(x, n * m));
  if (method == MuonNs::kStandard || m <= n) {
    for (int s = 0; s < steps; ++s) {
      RETURN_IF_ERROR(o.Gemm(true, n, n, m, 1.0f, x, x, 0.0f, r));  // A = X X^T
      RETURN_IF_ERROR(o.Scale(z, r, b, n * n));                     // B = b A + c A A
      RETURN_IF_ERROR(o.Gemm(false, n, n, n, c, r, r, 1.0f, z));
      RETURN_IF_ERROR(o.Scale(t, x, a, n * m));                     // X = a X + B X
      RETURN_IF_ERROR(o.Gemm(false, n, m, n, 1.0f, z, x, 1.0f, t));
      std::swap(x, t);
    }
    *result = x;
    return Status::OK();
  }
  RETURN_IF_ERROR(o.Gemm(true, n, n, m, 1.0f, x, x, 0.0f, r));  // R = X X^T
  bool have_q = false;
  for (int i = 0; i < steps; ++i) {
    if (i == kMuonGramRestart) {
      RETURN_IF_ERROR(o.Gemm(false, n, m, n, 1.0f, q, x, 0.0f, t));  // X = Q X
      std::swap(x, t);
      RETURN_IF_ERROR(o.Gemm(true, n, n, m, 1.0f, x, x, 0.0f, r));
      have_q = false;
    }
    RETURN_IF_ERROR(o.Scale(z, r, b, n * n));  // Z = b R + c R R
    RETURN_IF_ERROR(o.Gemm(false, n, n, n, c, r, r, 1.0f, z));
    if (!have_q) {
      RETURN_IF_ERROR(o.Scale(q, z, 1.0f, n * n));  // Q = Z + a I
      RETURN_IF_ERROR(o.AddDiagonal(q, a, n));
      have_q = true;
    } else {
      RETURN_IF_ERROR(o.Scale(w, q, a, n * n));  // Q = a Q + Z Q
      RETURN_IF_ERROR(o.Gemm(false, n, n, n, 1.0f, z, q, 1.0f, w));
      std::swap(q, w);
    }
    if (i < steps - 1 && i + 1 != kMuonGramRestart) {
      RETURN_IF_ERROR(o.Scale(w, r, a, n * n));  // RZ = a R + Z R
      RETURN_IF_ERROR(o.Gemm(false, n, n, n, 1.0f, z, r, 1.0f, w));
      RETURN_IF_ERROR(o.Scale(r, w, a, n * n));  // R = a RZ + Z RZ
      RETURN_IF_ERROR(o.Gemm(false, n, n, n, 1.0f, z, w, 1.0f, r));
    }
  }
  RETURN_IF_ERROR(o.Gemm(false, n, m, n, 1.0f, q, x, 0.0f, t));  // X = Q X
  *result = t;
  return Status::OK();
}

}  // namespace dsc::optim
