// Attention's float32 BLAS path (see attention_blas.h).
#include "kernels/cpu/attention_blas.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/simd_math.h"

namespace dsc::attn {
namespace {

constexpr int64_t kRows = 64;  // query rows per block: the scratch is kRows x keys floats, twice

std::atomic<bool> g_reference{false};

// The keys a block of rows [i0, i1) reads: all, or under is_causal (no past, no nonpad: key j
// is seen by rows i >= j) those up to its last row.
int64_t KeysOf(const AttentionSpec& sp, int64_t i1) { return sp.causal ? std::min(sp.keys, i1) : sp.keys; }

// p (rows x n, row stride n) = softmax over keys of scale Q K^T plus the bias, for query rows
// [i0, i0 + rows) of head h (kv head kh); a row whose keys are all masked is 0.
void Probabilities(const AttentionSpec& sp, cpu::Isa isa, const BlasInputs& in, int64_t b, int64_t h, int64_t i0,
                   int64_t rows, int64_t n, float* p) {
  const int64_t kh = sp.KvHead(h);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n),
              static_cast<int>(sp.q.dim), static_cast<float>(sp.scale), in.q + sp.q.At(b, h, i0),
              static_cast<int>(sp.q.st), in.k + sp.k.At(b, kh, 0), static_cast<int>(sp.k.st), 0.0f, p,
              static_cast<int>(n));
  constexpr float kNeg = -std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    float* z = p + r * n;
    const int64_t i = i0 + r;
    if (sp.has_mask) {
      const int64_t mrow = sp.MaskRow(b, h, i), ms = sp.mask_stride[3], m = std::min(n, sp.mask_len);
      if (sp.mask_bool) {
        const uint8_t* mk = static_cast<const uint8_t*>(in.mask) + mrow;
        for (int64_t j = 0; j < m; ++j)
          if (!mk[j * ms]) z[j] = kNeg;
      } else {
        const float* mk = static_cast<const float*>(in.mask) + mrow;
        for (int64_t j = 0; j < m; ++j) z[j] += mk[j * ms];
      }
      for (int64_t j = m; j < n; ++j) z[j] = kNeg;
    }
    if (sp.causal)
      for (int64_t j = i + 1; j < n; ++j) z[j] = kNeg;
  }
  // The whole block at once (short rows would pay the dispatch per row): subtract each row's max,
  // exp, divide by the sum. Exponents are clamped at kExpFloor first: libmvec's expf takes a slow
  // scalar path for -inf and underflowing lanes, and a causal block is half masked. What the
  // clamp lets through (at most exp(kExpFloor) per key, against the max's 1) is then set to 0, as
  // the masked keys and a row with every key masked must be.
  constexpr float kExpFloor = -87.0f, kExpTiny = 2e-38f;  // exp(-87) = 1.65e-38
  cpu::RunOnIsa(isa, [&] {
    for (int64_t r = 0; r < rows; ++r) {
      float* z = p + r * n;
      const float mx = cpu::RowMaxOf(z, n);
      if (mx == kNeg) {  // every key masked
        std::fill(z, z + n, kExpFloor);
        continue;
      }
      for (int64_t j = 0; j < n; ++j) {
        const float d = z[j] - mx;
        z[j] = d < kExpFloor ? kExpFloor : d;  // a NaN stays NaN (an fp16 overflow must show)
      }
    }
  });
  cpu::VecExp(isa, p, p, rows * n);
  cpu::RunOnIsa(isa, [&] {
    for (int64_t r = 0; r < rows; ++r) {
      float* z = p + r * n;
      for (int64_t j = 0; j < n; ++j) z[j] = z[j] < kExpTiny ? 0.0f : z[j];
      const double sum = cpu::SumToDouble(z, n);
      if (sum == 0) continue;
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < n; ++j) z[j] *= inv;
    }
  });
}

// Runs f(task) for every task on OpenMP threads, each GEMM single-threaded: the tasks are
// independent, so every output is the same on any number of threads (kernels/cpu/matmul.cc says
// why OpenBLAS's own threads stay out of such loops).
template <typename F> void ForTasks(int64_t tasks, int64_t work, F f) {
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic, 1) if (work > (1 << 15))
  for (int64_t t = 0; t < tasks; ++t) f(t);
  openblas_set_num_threads(saved);
}

}  // namespace

bool BlasPathCovers(const AttentionSpec& sp, bool mask_grad) {
  return !g_reference.load() && !(sp.softcap > 0) && sp.past == 0 && !sp.has_nonpad && !mask_grad && sp.keys > 0 &&
         sp.q.dim > 0 && sp.v.dim > 0;
}

void UseReferenceForTesting(bool reference) { g_reference.store(reference); }
bool ReferenceForcedForTesting() { return g_reference.load(); }

void ForwardBlas(const AttentionSpec& sp, cpu::Isa isa, const BlasInputs& in, float* y) {
  const HeadView yv = sp.YView();
  const int64_t S = sp.q.len, blocks = (S + kRows - 1) / kRows, heads = sp.q.heads;
  const int64_t tasks = sp.batch * heads * blocks;
  std::vector<std::vector<float>> scratch(static_cast<size_t>(omp_get_max_threads()));
  ForTasks(tasks, tasks * kRows * sp.keys * sp.q.dim, [&](int64_t t) {
    std::vector<float>& p = scratch[static_cast<size_t>(omp_get_thread_num())];
    p.resize(static_cast<size_t>(kRows * sp.keys));
    const int64_t b = t / (heads * blocks), h = t / blocks % heads, i0 = t % blocks * kRows;
    const int64_t rows = std::min(kRows, S - i0), n = KeysOf(sp, i0 + rows);
    Probabilities(sp, isa, in, b, h, i0, rows, n, p.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(sp.v.dim),
                static_cast<int>(n), 1.0f, p.data(), static_cast<int>(n), in.v + sp.v.At(b, sp.KvHead(h), 0),
                static_cast<int>(sp.v.st), 0.0f, y + yv.At(b, h, i0), static_cast<int>(yv.st));
  });
}

void BackwardBlas(const AttentionSpec& sp, cpu::Isa isa, const BlasInputs& in, const float* dy, float* dq, float* dk,
                  float* dv) {
  const HeadView yv = sp.YView();
  const int64_t S = sp.q.len, L = sp.keys, D = sp.q.dim, Dv = sp.v.dim;
  const int64_t group = sp.q.heads / sp.k.heads, tasks = sp.batch * sp.k.heads;
  std::vector<std::vector<float>> scratch(static_cast<size_t>(omp_get_max_threads()));
  ForTasks(tasks, tasks * group * S * L * D, [&](int64_t t) {
    std::vector<float>& buf = scratch[static_cast<size_t>(omp_get_thread_num())];
    buf.resize(static_cast<size_t>(2 * kRows * L));
    float* p = buf.data();
    float* dz = p + kRows * L;
    const int64_t b = t / sp.k.heads, kh = t % sp.k.heads;
    float* dkh = dk ? dk + sp.k.At(b, kh, 0) : nullptr;
    float* dvh = dv ? dv + sp.v.At(b, kh, 0) : nullptr;
    for (int64_t j = 0; j < L; ++j) {
      if (dkh) std::fill(dkh + j * sp.k.st, dkh + j * sp.k.st + D, 0.0f);
      if (dvh) std::fill(dvh + j * sp.v.st, dvh + j * sp.v.st + Dv, 0.0f);
    }
    const float* kp = in.k + sp.k.At(b, kh, 0);
    const float* vp = in.v + sp.v.At(b, kh, 0);
    const int ldk = static_cast<int>(sp.k.st), ldv = static_cast<int>(sp.v.st);
    const int ldq = static_cast<int>(sp.q.st), ldy = static_cast<int>(yv.st);
    const float scale = static_cast<float>(sp.scale);
    for (int64_t h = kh * group; h < (kh + 1) * group; ++h)
      for (int64_t i0 = 0; i0 < S; i0 += kRows) {
        const int64_t rows = std::min(kRows, S - i0), n = KeysOf(sp, i0 + rows);
        const int m = static_cast<int>(rows), nn = static_cast<int>(n);
        Probabilities(sp, isa, in, b, h, i0, rows, n, p);
        const float* dyb = dy + yv.At(b, h, i0);
        const float* qb = in.q + sp.q.At(b, h, i0);
        // dP = dY V^T, then dZ = P (dP - sum(dP P)) row by row.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nn, static_cast<int>(Dv), 1.0f, dyb, ldy, vp, ldv,
                    0.0f, dz, nn);
        cpu::RunOnIsa(isa, [&] {
          for (int64_t r = 0; r < rows; ++r) {
            const float* pr = p + r * n;
            float* dr = dz + r * n;
            const double s = cpu::LaneSum(n, [&](int64_t j) { return static_cast<double>(pr[j]) * dr[j]; });
            const float sf = static_cast<float>(s);
            for (int64_t j = 0; j < n; ++j) dr[j] = pr[j] * (dr[j] - sf);
          }
        });
        if (dvh)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nn, static_cast<int>(Dv), m, 1.0f, p, nn, dyb, ldy,
                      1.0f, dvh, ldv);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, static_cast<int>(D), nn, scale, dz, nn, kp, ldk,
                    0.0f, dq + sp.q.At(b, h, i0), ldq);
        if (dkh)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nn, static_cast<int>(D), m, scale, dz, nn, qb, ldq,
                      1.0f, dkh, ldk);
      }
  });
}

}  // namespace dsc::attn
