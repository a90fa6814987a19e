// Attention's per-row math shared by the CPU kernels (kernels/cpu/attention.cc) and their CUDA
// twins (kernels/cuda/attention.cu): the node's static description (a plain struct the CUDA
// kernels take by value), the bias of one key (mask, causal, padding), softcap and its
// derivative, and the softmax terms. All in double, as the CPU has always computed attention.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "ir/dtype.h"
#include "kernels/common/hd.h"

namespace dsc::attn {

inline constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Element strides of a (B, H, T, D) view of a 3-D (B, T, H*D) or 4-D (B, H, T, D) tensor.
struct HeadView {
  int64_t heads = 1, len = 0, dim = 0;
  int64_t sb = 0, sh = 0, st = 0;
  DSC_HD int64_t At(int64_t b, int64_t h, int64_t t) const { return b * sb + h * sh + t * st; }
};

// Everything about one Attention/AttentionGrad node that does not change between runs
// (kernels/common/attention_spec.h reads it from the node).
struct AttentionSpec {
  int64_t batch = 1;
  HeadView q, k, v, pk, pv;
  int64_t past = 0, keys = 0;  // past length, total key length (past + K's)
  double scale = 1, softcap = 0;
  bool causal = false, has_mask = false, mask_bool = false, has_nonpad = false;
  DType mask_dtype = DType::kUndefined, nonpad_dtype = DType::kUndefined;
  int64_t mask_stride[4] = {0, 0, 0, 0};  // (B, Hq, S, mask_len) strides; 0 along broadcast dims
  int64_t mask_dims[4] = {1, 1, 1, 1};    // the mask's dims, padded in front with 1s
  int64_t mask_len = 0, mask_numel = 0;
  bool rank3 = false;  // Q, K, V (and so Y) are (B, T, H*D)

  DSC_HD int64_t KvHead(int64_t h) const { return h / (q.heads / k.heads); }
  // Y (and dY): Q's layout with V's head size.
  DSC_HD HeadView YView() const {
    const int64_t H = q.heads, S = q.len, D = v.dim;
    return rank3 ? HeadView{H, S, D, S * H * D, D, H * D} : HeadView{H, S, D, H * S * D, S * D, D};
  }
  // The mask element of query row (b, h, i) at key 0; key j adds j * mask_stride[3].
  DSC_HD int64_t MaskRow(int64_t b, int64_t h, int64_t i) const {
    return b * mask_stride[0] + h * mask_stride[1] + i * mask_stride[2];
  }
  // How far past the query index a key may be under is_causal: the past length, or without one
  // nonpad_kv_seqlen[b] - q_len when that input is given, else 0.
  DSC_HD int64_t CausalOffset(int64_t nonpad_b) const { return !past && has_nonpad ? nonpad_b - q.len : past; }
};

// Key j's row of K or V (past first).
template <typename T>
DSC_HD const T* KeyRow(const T* x, const T* past, const HeadView& xv, const HeadView& pv, int64_t past_len, int64_t b,
                       int64_t h, int64_t j) {
  return j < past_len ? past + pv.At(b, h, j) : x + xv.At(b, h, j - past_len);
}

// The additive bias of key j for query i: attn_mask (`mask_value` is its element, read by the
// caller, bool as 0/1; unused when there is no mask or j is past the mask's columns), causal and
// padding masks as -inf.
DSC_HD double KeyBias(const AttentionSpec& sp, int64_t i, int64_t j, double mask_value, int64_t offset,
                      int64_t nonpad_b) {
  double bias = 0;
  if (sp.has_mask) bias = j >= sp.mask_len ? kNegInf : sp.mask_bool ? (mask_value != 0 ? 0.0 : kNegInf) : mask_value;
  if (sp.causal && j > i + offset) bias = kNegInf;
  if (sp.has_nonpad && j >= nonpad_b) bias = kNegInf;
  return bias;
}

// C = softcap * tanh(S / softcap) when softcap > 0, else S; and dC/dS.
DSC_HD double Capped(const AttentionSpec& sp, double s) {
  return sp.softcap > 0 ? sp.softcap * ::tanh(s / sp.softcap) : s;
}
DSC_HD double CapGrad(const AttentionSpec& sp, double s) {
  if (!(sp.softcap > 0)) return 1.0;
  const double th = ::tanh(s / sp.softcap);
  return 1.0 - th * th;
}

// exp(z - max) of one softmax term; a masked key (-inf) contributes exactly 0.
DSC_HD double SoftmaxTerm(double z, double mx) { return z == kNegInf ? 0.0 : ::exp(z - mx); }

// dZ of one key: p (dP - sum_j p_j dP_j).
DSC_HD double SoftmaxGrad(double p, double dp, double pdp) { return p * (dp - pdp); }

}  // namespace dsc::attn
