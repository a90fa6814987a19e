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
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Element strides of a (B, H, T, D) view of a 3-D (B, T, H*D) or 4-D (B, H, T, D) tensor.
struct HeadView {
  int64_t heads = 1, len = 0, dim = 0;
  int64_t sb = 0, sh = 0, st = 0;
  int64_t At(int64_t b, int64_t h, int64_t t) const { return b * sb + h * sh + t * st; }
};

StatusOr<HeadView> ReadHeads(const Value* v, const char* what, int64_t heads_attr, int64_t batch) {
  ASSIGN_OR_RETURN(std::vector<int64_t> d, nn::StaticDims(v, what));
  HeadView hv;
  if (d.size() == 4) {
    hv.heads = d[1], hv.len = d[2], hv.dim = d[3];
    hv.sb = d[1] * d[2] * d[3], hv.sh = d[2] * d[3], hv.st = d[3];
  } else if (d.size() == 3) {
    if (heads_attr <= 0 || d[2] % heads_attr != 0)
      return InvalidArgument(what, " ", nn::DimsToString(d), " is 3-D: q_num_heads/kv_num_heads must divide its last dim");
    hv.heads = heads_attr, hv.len = d[1], hv.dim = d[2] / heads_attr;
    hv.sb = d[1] * d[2], hv.st = d[2], hv.sh = hv.dim;
  } else {
    return InvalidArgument(what, " ", nn::DimsToString(d), " must be 3-D or 4-D");
  }
  if (d[0] != batch) return InvalidArgument(what, " ", nn::DimsToString(d), " has batch ", d[0], ", Q has ", batch);
  return hv;
}

// Everything about one Attention node that does not change between runs. `g` = 1 for AttentionGrad,
// whose inputs are shifted by dY.
struct AttentionSpec {
  int64_t batch = 1;
  HeadView q, k, v, pk, pv;
  int64_t past = 0, keys = 0;  // past length, total key length (past + K's)
  double scale = 1, softcap = 0;
  bool causal = false, has_mask = false, mask_bool = false, has_nonpad = false;
  std::vector<int64_t> mask_stride;  // (B, Hq, S, mask_len) strides; 0 along broadcast dims
  int64_t mask_len = 0, mask_numel = 0;
  bool rank3 = false;  // Q, K, V (and so Y) are (B, T, H*D)

  Status Init(const Node& n, size_t g) {
    ASSIGN_OR_RETURN(std::vector<int64_t> qd, nn::StaticDims(n.input(g), "Q"));
    if (qd.empty()) return InvalidArgument("Q is a scalar");
    batch = qd[0];
    rank3 = qd.size() == 3;
    const int64_t qh = n.GetInt("q_num_heads", 0), kvh = n.GetInt("kv_num_heads", 0);
    for (size_t i = 1; i < 3; ++i) {
      ASSIGN_OR_RETURN(std::vector<int64_t> d, nn::StaticDims(n.input(g + i), i == 1 ? "K" : "V"));
      if (d.size() != qd.size()) return InvalidArgument("Q, K and V must all be 3-D or all 4-D");
    }
    ASSIGN_OR_RETURN(q, ReadHeads(n.input(g), "Q", qh, batch));
    ASSIGN_OR_RETURN(k, ReadHeads(n.input(g + 1), "K", kvh, batch));
    ASSIGN_OR_RETURN(v, ReadHeads(n.input(g + 2), "V", kvh, batch));
    if (k.heads != v.heads || k.len != v.len || k.dim != q.dim)
      return InvalidArgument("K (", k.heads, " heads, ", k.len, " keys, size ", k.dim, ") and V (", v.heads, " heads, ",
                             v.len, " keys) must agree, and K's head size with Q's (", q.dim, ")");
    if (q.heads % k.heads != 0)
      return InvalidArgument(q.heads, " query heads are not a multiple of ", k.heads, " key/value heads");
    if ((n.input(g + 4) == nullptr) != (n.input(g + 5) == nullptr))
      return InvalidArgument("past_key and past_value must be given together");
    if (n.input(g + 4)) {
      ASSIGN_OR_RETURN(pk, ReadHeads(n.input(g + 4), "past_key", 0, batch));
      ASSIGN_OR_RETURN(pv, ReadHeads(n.input(g + 5), "past_value", 0, batch));
      if (pk.heads != k.heads || pk.dim != k.dim || pv.heads != v.heads || pv.dim != v.dim || pk.len != pv.len)
        return InvalidArgument("past_key/past_value do not match K/V's heads and head sizes");
      past = pk.len;
    }
    keys = past + k.len;
    scale = n.HasAttr("scale") ? n.GetFloat("scale", 1.0f) : 1.0 / std::sqrt(static_cast<double>(q.dim));
    // The reference scales Q and K by sqrt(scale) each, in the input type.
    const float root = static_cast<float>(std::sqrt(scale));
    scale = static_cast<double>(root) * root;
    softcap = n.GetFloat("softcap", 0.0f);
    causal = n.GetInt("is_causal", 0) != 0;
    has_nonpad = n.input(g + 6) != nullptr;
    if (has_nonpad && past) return InvalidArgument("nonpad_kv_seqlen cannot be combined with past_key/past_value");
    if (const Value* m = n.input(g + 3)) {
      ASSIGN_OR_RETURN(std::vector<int64_t> md, nn::StaticDims(m, "attn_mask"));
      has_mask = true;
      mask_bool = m->type.dtype == DType::kBool;
      if (md.empty() || md.size() > 4) return InvalidArgument("attn_mask ", nn::DimsToString(md), " must have rank 1 to 4");
      mask_len = md.back();
      if (mask_len > keys)
        return InvalidArgument("attn_mask ", nn::DimsToString(md), " has more columns than the ", keys, " keys");
      const std::vector<int64_t> full{batch, q.heads, q.len, mask_len};
      mask_stride.assign(4, 0);
      int64_t acc = 1;
      for (size_t i = md.size(); i-- > 0;) {
        const size_t f = 4 - md.size() + i;
        if (md[i] != 1 && md[i] != full[f])
          return InvalidArgument("attn_mask ", nn::DimsToString(md), " does not broadcast to (batch, q heads, q len, keys) ",
                                 nn::DimsToString(full));
        mask_stride[f] = md[i] == 1 ? 0 : acc;
        acc *= md[i];
      }
      mask_numel = acc;
    }
    return Status::OK();
  }

  int64_t KvHead(int64_t h) const { return h / (q.heads / k.heads); }
  // Y (and dY): Q's layout with V's head size.
  HeadView YView() const {
    const int64_t H = q.heads, S = q.len, D = v.dim;
    return rank3 ? HeadView{H, S, D, S * H * D, D, H * D} : HeadView{H, S, D, H * S * D, S * D, D};
  }
};

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

// Key j's row of K or V (past first).
inline const float* KeyRow(const float* x, const float* past, const HeadView& xv, const HeadView& pv, int64_t past_len,
                           int64_t b, int64_t h, int64_t j) {
  return j < past_len ? past + pv.At(b, h, j) : x + xv.At(b, h, j - past_len);
}

// Fills s[j] (scaled scores, before softcap), z[j] and p[j] (softmax) for query row (b, h, i);
// returns false when the row is fully masked (p all 0).
bool ScoreRow(const AttentionSpec& sp, const AttentionData& d, int64_t b, int64_t h, int64_t i, double* s, double* z,
              double* p) {
  const float* qi = d.q + sp.q.At(b, h, i);
  const int64_t kh = sp.KvHead(h), D = sp.q.dim;
  int64_t offset = sp.past;
  if (!sp.past && sp.has_nonpad) offset = d.nonpad[static_cast<size_t>(b)] - sp.q.len;
  const int64_t mrow = sp.has_mask ? b * sp.mask_stride[0] + h * sp.mask_stride[1] + i * sp.mask_stride[2] : 0;
  bool any = false;
  double mx = kNegInf;
  for (int64_t j = 0; j < sp.keys; ++j) {
    double bias = 0;
    if (sp.has_mask) {
      if (j >= sp.mask_len) {
        bias = kNegInf;
      } else {
        const int64_t mi = mrow + j * sp.mask_stride[3];
        bias = sp.mask_bool ? (static_cast<const uint8_t*>(d.mask)[mi] ? 0.0 : kNegInf)
                            : static_cast<double>(static_cast<const float*>(d.mask)[mi]);
      }
    }
    if (sp.causal && j > i + offset) bias = kNegInf;
    if (sp.has_nonpad && j >= d.nonpad[static_cast<size_t>(b)]) bias = kNegInf;
    const float* kj = KeyRow(d.k, d.pk, sp.k, sp.pk, sp.past, b, kh, j);
    double dot = 0;
    for (int64_t e = 0; e < D; ++e) dot += static_cast<double>(qi[e]) * kj[e];
    s[j] = sp.scale * dot;
    const double c = sp.softcap > 0 ? sp.softcap * std::tanh(s[j] / sp.softcap) : s[j];
    z[j] = c + bias;
    if (bias != kNegInf) any = true;
    mx = std::max(mx, z[j]);
  }
  if (!any) {
    std::fill(p, p + sp.keys, 0.0);
    return false;
  }
  double sum = 0;
  for (int64_t j = 0; j < sp.keys; ++j) sum += (p[j] = z[j] == kNegInf ? 0.0 : std::exp(z[j] - mx));
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
    return spec_.Init(node, 0);
  }

 protected:
  Status Run(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(AttentionData d, ReadData(spec_, ctx, 0));
    const AttentionSpec& sp = spec_;
    float* y = ctx.output(0).data<float>();
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
    if (ctx.has_output(1)) WritePresent(d.pk, d.k, sp.pk, sp.k, sp.batch, sp.past, ctx.output(1).data<float>());
    if (ctx.has_output(2)) WritePresent(d.pv, d.v, sp.pv, sp.v, sp.batch, sp.past, ctx.output(2).data<float>());
    return Status::OK();
  }

 private:
  AttentionSpec spec_;
};

// (dY, Q, K, V, attn_mask, past_key, past_value, nonpad_kv_seqlen) -> dQ, dK, dV[, dAttnMask]
class AttentionGradKernel : public nn::DescribedKernel {
 public:
  Status Init(const Node& node) {
    desc_ = node.Describe();
    RETURN_IF_ERROR(spec_.Init(node, 1));
    if (node.num_outputs() > 3 && (!spec_.has_mask || spec_.mask_bool))
      return InvalidArgument("dAttnMask asked for without a float attn_mask");
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
              dz[j] = p[j] * (dz[j] - pdp);
              if (want_mask) dz_all[static_cast<size_t>(((b * sp.q.heads + h) * S + i) * L + j)] = dz[j];
              double ds = dz[j];
              if (sp.softcap > 0) {
                const double th = std::tanh(s[j] / sp.softcap);
                ds *= 1.0 - th * th;
              }
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
};

DSC_REGISTER_KERNEL("", "Attention", kCpu, kFloat32, MakeFactory<AttentionKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kAttentionGrad, kCpu, kFloat32, MakeFactory<AttentionGradKernel>());

}  // namespace
}  // namespace dsc
