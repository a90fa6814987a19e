// Attention (opsets 23/24) and its gradient AttentionGrad, following ONNX's reference
// (onnx/reference/ops/op_attention.py) term by term:
//   S = scale * Q K^T            (scale default 1/sqrt(head size); K, V prefixed by past_key/value)
//   C = softcap > 0 ? softcap * tanh(S / softcap) : S      (before the mask: -inf stays -inf)
//   Z = C + bias,  bias = attn_mask (bool: 0 / -inf; last dim shorter than the keys: padded with
//       -inf) + causal (key j allowed iff j <= i + offset, offset = past length, or
//       nonpad_kv_seqlen[b] - q_len without past, else 0) + padding (j >= nonpad_kv_seqlen[b]: -inf)
//   P = softmax(Z) over the keys, a row whose bias is all -inf being 0;  Y = P V
// Q (B, Hq, S, Dk) or (B, S, Hq*Dk) with q_num_heads; K/V likewise with kv_num_heads; a query head
// h reads kv head h / (Hq / Hkv) (grouped-query attention). Everything runs in double, so
// softmax_precision asks for nothing more. Only Y and present_key/present_value are produced:
// qk_matmul_output is refused (training graphs do not read it).
//
// The gradient recomputes P row by row (nothing is stashed), with dZ = P (dP - sum(dP P)), dP = dY V^T:
//   dV = P^T dY,  dS = dZ * (softcap ? 1 - tanh^2(S / softcap) : 1),  dQ = scale dS K,  dK = scale dS^T Q
// dK/dV of one kv head sum over its query heads; dAttnMask (float mask) is dZ summed over the
// dims the mask was broadcast along.
//
// This is the readable spec. Nodes it covers (no softcap, past or nonpad_kv_seqlen, no dAttnMask)
// run the float32 BLAS path of attention_blas.h instead, which tests hold to this one.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/attention_math.h"
#include "kernels/common/attention_spec.h"
#include "kernels/cpu/attention_blas.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

using attn::AttentionSpec;
using attn::HeadView;
using attn::kNegInf;

// Per-run inputs of the math below.
struct AttentionData {
  const float *q = nullptr, *k = nullptr, *v = nullptr, *pk = nullptr, *pv = nullptr;
  const void* mask = nullptr;
  std::vector<int64_t> nonpad;  // per batch
};

StatusOr<AttentionData> ReadData(const AttentionSpec& sp, const KernelContext& ctx, size_t g) {
  AttentionData d;
  d.q = ctx.input(g).data<float>(), d.k = ctx.input(g + 1).data<float>(), d.v = ctx.input(g + 2).data<float>();
  if (sp.has_mask) d.mask = ctx.input(g + 3).ptr;
  if (sp.past) d.pk = ctx.input(g + 4).data<float>(), d.pv = ctx.input(g + 5).data<float>();
  if (sp.has_nonpad) {
    const TensorView& t = ctx.input(g + 6);
    if (t.numel() != sp.batch) return InvalidArgument("nonpad_kv_seqlen has ", t.numel(), " values for batch ", sp.batch);
    for (int64_t b = 0; b < sp.batch; ++b)
      d.nonpad.push_back(t.dtype == DType::kInt32 ? t.data<int32_t>()[b] : t.data<int64_t>()[b]);
  }
  return d;
}

using attn::KeyRow;

// Fills s[j] (scaled scores, before softcap), z[j] and p[j] (softmax) for query row (b, h, i);
// returns false when the row is fully masked (p all 0).
bool ScoreRow(const AttentionSpec& sp, const AttentionData& d, int64_t b, int64_t h, int64_t i, double* s, double* z,
              double* p) {
  const float* qi = d.q + sp.q.At(b, h, i);
  const int64_t kh = sp.KvHead(h), D = sp.q.dim;
  const int64_t nonpad_b = sp.has_nonpad ? d.nonpad[static_cast<size_t>(b)] : 0;
  const int64_t offset = sp.CausalOffset(nonpad_b);
  const int64_t mrow = sp.has_mask ? sp.MaskRow(b, h, i) : 0;
  bool any = false;
  double mx = kNegInf;
  for (int64_t j = 0; j < sp.keys; ++j) {
    double mask_value = 0;
    if (sp.has_mask && j < sp.mask_len) {
      const int64_t mi = mrow + j * sp.mask_stride[3];
      mask_value = sp.mask_bool ? static_cast<double>(static_cast<const uint8_t*>(d.mask)[mi])
                                : static_cast<double>(static_cast<const float*>(d.mask)[mi]);
    }
    const double bias = attn::KeyBias(sp, i, j, mask_value, offset, nonpad_b);
    const float* kj = KeyRow(d.k, d.pk, sp.k, sp.pk, sp.past, b, kh, j);
    double dot = 0;
    for (int64_t e = 0; e < D; ++e) dot += static_cast<double>(qi[e]) * kj[e];
    s[j] = sp.scale * dot;
    z[j] = attn::Capped(sp, s[j]) + bias;
    if (bias != kNegInf) any = true;
    mx = std::max(mx, z[j]);
  }
  if (!any) {
    std::fill(p, p + sp.keys, 0.0);
    return false;
  }
  double sum = 0;
  for (int64_t j = 0; j < sp.keys; ++j) sum += (p[j] = attn::SoftmaxTerm(z[j], mx));
  for (int64_t j = 0; j < sp.keys; ++j) p[j] /= sum;
  return true;
}

// Copies past then new keys into present (B, Hkv, past + len, D).
void WritePresent(const float* past, const float* x, const HeadView& pv, const HeadView& xv, int64_t batch,
                  int64_t past_len, float* out) {
  const int64_t T = past_len + xv.len, D = xv.dim;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < xv.heads; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const float* src = KeyRow(x, past, xv, pv, past_len, b, h, t);
        std::copy(src, src + D, out + ((b * xv.heads + h) * T + t) * D);
      }
}

// (Q, K, V[, attn_mask, past_key, past_value, nonpad_kv_seqlen]) -> Y[, present_key, present_value]
class AttentionKernel : public nn::DescribedKernel {
 public:
  Status Init(const Node& node) {
    desc_ = node.Describe();
    if (node.num_outputs() > 3 && node.output(3))
      return Unimplemented("qk_matmul_output (output 3) is not supported: training graphs do not read it");
    RETURN_IF_ERROR(attn::InitAttentionSpec(spec_, node, 0));
    ASSIGN_OR_RETURN(isa_, cpu::SelectedIsa());
    blas_ = attn::BlasPathCovers(spec_, /*mask_grad=*/false);
    return Status::OK();
  }

 protected:
  Status Run(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(AttentionData d, ReadData(spec_, ctx, 0));
    const AttentionSpec& sp = spec_;
    float* y = ctx.output(0).data<float>();
    if (blas_) {
      attn::ForwardBlas(sp, isa_, attn::BlasInputs{d.q, d.k, d.v, d.mask}, y);
    } else {
      RunReference(sp, d, y);
    }
    if (ctx.has_output(1)) WritePresent(d.pk, d.k, sp.pk, sp.k, sp.batch, sp.past, ctx.output(1).data<float>());
    if (ctx.has_output(2)) WritePresent(d.pv, d.v, sp.pv, sp.v, sp.batch, sp.past, ctx.output(2).data<float>());
    return Status::OK();
  }

 private:
  static void RunReference(const AttentionSpec& sp, const AttentionData& d, float* y) {
    const HeadView yv = sp.YView();
    const int64_t rows = sp.batch * sp.q.heads * sp.q.len, L = sp.keys, Dv = sp.v.dim;
#pragma omp parallel if (rows * L * sp.q.dim > nn::kParallelThreshold)
    {
      std::vector<double> s(static_cast<size_t>(L)), z(s), p(s), acc(static_cast<size_t>(Dv));
#pragma omp for
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = r / (sp.q.heads * sp.q.len), h = r / sp.q.len % sp.q.heads, i = r % sp.q.len;
        ScoreRow(sp, d, b, h, i, s.data(), z.data(), p.data());
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < L; ++j) {
          if (p[j] == 0) continue;
          const float* vj = KeyRow(d.v, d.pv, sp.v, sp.pv, sp.past, b, sp.KvHead(h), j);
          for (int64_t e = 0; e < Dv; ++e) acc[e] += p[j] * vj[e];
        }
        float* yr = y + yv.At(b, h, i);
        for (int64_t e = 0; e < Dv; ++e) yr[e] = static_cast<float>(acc[e]);
      }
    }
  }

  AttentionSpec spec_;
  cpu::Isa isa_ = cpu::Isa::kBaseline;
  bool blas_ = false;
};

// (dY, Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen) -> dQ, dK, dV[, dAttnMask]
class AttentionGradKernel : public nn::DescribedKernel {
 public:
  Status Init(const Node& node) {
    desc_ = node.Describe();
    RETURN_IF_ERROR(attn::InitAttentionSpec(spec_, node, 1));
    if (node.num_outputs() > 3 && (!spec_.has_mask || spec_.mask_bool))
      return InvalidArgument("dAttnMask asked for without a float attn_mask");
    ASSIGN_OR_RETURN(isa_, cpu::SelectedIsa());
    blas_ = attn::BlasPathCovers(spec_, /*mask_grad=*/node.num_outputs() > 3 && node.output(3));
    return Status::OK();
  }

 protected:
  Status Run(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(AttentionData d, ReadData(spec_, ctx, 1));
    const AttentionSpec& sp = spec_;
    const float* dy = ctx.input(0).data<float>();
    const HeadView yv = sp.YView();
    float* dq = ctx.output(0).data<float>();
    float* dk = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    float* dv = ctx.has_output(2) ? ctx.output(2).data<float>() : nullptr;
    const bool want_mask = ctx.has_output(3);
    if (blas_ && !want_mask) {
      attn::BackwardBlas(sp, isa_, attn::BlasInputs{d.q, d.k, d.v, d.mask}, dy, dq, dk, dv);
      return Status::OK();
    }
    const int64_t S = sp.q.len, L = sp.keys, Dk = sp.q.dim, Dv = sp.v.dim, P = sp.past;
    const int64_t group = sp.q.heads / sp.k.heads;
    // dZ of every (b, h, i, j) when the mask needs it; reduced to the mask's shape afterwards.
    std::vector<double> dz_all(want_mask ? static_cast<size_t>(sp.batch * sp.q.heads * S * L) : 0);
    const int64_t tasks = sp.batch * sp.k.heads;
#pragma omp parallel if (tasks * group * S * L * Dk > nn::kParallelThreshold)
    {
      std::vector<double> s(static_cast<size_t>(L)), z(s), p(s), dz(s);
      std::vector<double> dkacc(static_cast<size_t>(L * Dk)), dvacc(static_cast<size_t>(L * Dv));
      std::vector<double> dqacc(static_cast<size_t>(Dk));
#pragma omp for
      for (int64_t t = 0; t < tasks; ++t) {
        const int64_t b = t / sp.k.heads, kh = t % sp.k.heads;
        std::fill(dkacc.begin(), dkacc.end(), 0.0);
        std::fill(dvacc.begin(), dvacc.end(), 0.0);
        for (int64_t h = kh * group; h < (kh + 1) * group; ++h)
          for (int64_t i = 0; i < S; ++i) {
            const float* dyi = dy + yv.At(b, h, i);
            const float* qi = d.q + sp.q.At(b, h, i);
            float* dqi = dq + sp.q.At(b, h, i);
            if (!ScoreRow(sp, d, b, h, i, s.data(), z.data(), p.data())) {
              std::fill(dqi, dqi + Dk, 0.0f);  // dz_all's row stays 0
              continue;
            }
            double pdp = 0;
            for (int64_t j = 0; j < L; ++j) {
              if (p[j] == 0) {
                dz[j] = 0;
                continue;
              }
              const float* vj = KeyRow(d.v, d.pv, sp.v, sp.pv, P, b, kh, j);
              double dp = 0;
              for (int64_t e = 0; e < Dv; ++e) {
                dp += static_cast<double>(dyi[e]) * vj[e];
                dvacc[static_cast<size_t>(j * Dv + e)] += p[j] * dyi[e];
              }
              dz[j] = dp;
              pdp += p[j] * dp;
            }
            std::fill(dqacc.begin(), dqacc.end(), 0.0);
            for (int64_t j = 0; j < L; ++j) {
              dz[j] = attn::SoftmaxGrad(p[j], dz[j], pdp);
              if (want_mask) dz_all[static_cast<size_t>(((b * sp.q.heads + h) * S + i) * L + j)] = dz[j];
              double ds = dz[j] * attn::CapGrad(sp, s[j]);
              if (ds == 0) continue;
              ds *= sp.scale;
              const float* kj = KeyRow(d.k, d.pk, sp.k, sp.pk, P, b, kh, j);
              for (int64_t e = 0; e < Dk; ++e) {
                dqacc[static_cast<size_t>(e)] += ds * kj[e];
                dkacc[static_cast<size_t>(j * Dk + e)] += ds * qi[e];
              }
            }
            for (int64_t e = 0; e < Dk; ++e) dqi[e] = static_cast<float>(dqacc[static_cast<size_t>(e)]);
          }
        // Keys of the past have no output here: autodiff refuses a gradient into past_key/value.
        for (int64_t j = P; j < L; ++j) {
          if (dk)
            for (int64_t e = 0; e < Dk; ++e)
              dk[sp.k.At(b, kh, j - P) + e] = static_cast<float>(dkacc[static_cast<size_t>(j * Dk + e)]);
          if (dv)
            for (int64_t e = 0; e < Dv; ++e)
              dv[sp.v.At(b, kh, j - P) + e] = static_cast<float>(dvacc[static_cast<size_t>(j * Dv + e)]);
        }
      }
    }
    if (want_mask) {
      // Serial, in (b, h, i, j) order: each mask element's sum has one order whatever the threads.
      std::vector<double> dm(static_cast<size_t>(sp.mask_numel), 0.0);
      for (int64_t b = 0; b < sp.batch; ++b)
        for (int64_t h = 0; h < sp.q.heads; ++h)
          for (int64_t i = 0; i < S; ++i)
            for (int64_t j = 0; j < sp.mask_len; ++j)
              dm[static_cast<size_t>(b * sp.mask_stride[0] + h * sp.mask_stride[1] + i * sp.mask_stride[2] +
                                     j * sp.mask_stride[3])] +=
                  dz_all[static_cast<size_t>(((b * sp.q.heads + h) * S + i) * L + j)];
      float* out = ctx.output(3).data<float>();
      for (int64_t m = 0; m < sp.mask_numel; ++m) out[m] = static_cast<float>(dm[static_cast<size_t>(m)]);
    }
    return Status::OK();
  }

 private:
  AttentionSpec spec_;
  cpu::Isa isa_ = cpu::Isa::kBaseline;
  bool blas_ = false;
};

DSC_REGISTER_KERNEL("", "Attention", kCpu, kFloat32, MakeFactory<AttentionKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kAttentionGrad, kCpu, kFloat32, MakeFactory<AttentionGradKernel>());

}  // namespace
}  // namespace dsc
