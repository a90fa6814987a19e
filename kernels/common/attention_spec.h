// Reads an Attention/AttentionGrad node into attn::AttentionSpec (kernels/common/attention_math.h),
// once at Init, for the CPU kernels and their CUDA twins. `g` = 1 for AttentionGrad, whose inputs
// are shifted by dY.
#pragma once

#include <cmath>
#include <vector>

#include "kernels/common/attention_math.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::attn {

inline StatusOr<HeadView> ReadHeads(const Value* v, const char* what, int64_t heads_attr, int64_t batch) {
  ASSIGN_OR_RETURN(std::vector<int64_t> d, nn::StaticDims(v, what));
  HeadView hv;
  if (d.size() == 4) {
    hv.heads = d[1], hv.len = d[2], hv.dim = d[3];
    hv.sb = d[1] * d[2] * d[3], hv.sh = d[2] * d[3], hv.st = d[3];
  } else if (d.size() == 3) {
    if (heads_attr <= 0 || d[2] % heads_attr != 0)
      return InvalidArgument(what, " ", nn::DimsToString(d),
                             " is 3-D: q_num_heads/kv_num_heads must divide its last dim");
    hv.heads = heads_attr, hv.len = d[1], hv.dim = d[2] / heads_attr;
    hv.sb = d[1] * d[2], hv.st = d[2], hv.sh = hv.dim;
  } else {
    return InvalidArgument(what, " ", nn::DimsToString(d), " must be 3-D or 4-D");
  }
  if (d[0] != batch) return InvalidArgument(what, " ", nn::DimsToString(d), " has batch ", d[0], ", Q has ", batch);
  return hv;
}

inline Status InitAttentionSpec(AttentionSpec& sp, const Node& n, size_t g) {
  ASSIGN_OR_RETURN(std::vector<int64_t> qd, nn::StaticDims(n.input(g), "Q"));
  if (qd.empty()) return InvalidArgument("Q is a scalar");
  sp.batch = qd[0];
  sp.rank3 = qd.size() == 3;
  const int64_t qh = n.GetInt("q_num_heads", 0), kvh = n.GetInt("kv_num_heads", 0);
  for (size_t i = 1; i < 3; ++i) {
    ASSIGN_OR_RETURN(std::vector<int64_t> d, nn::StaticDims(n.input(g + i), i == 1 ? "K" : "V"));
    if (d.size() != qd.size()) return InvalidArgument("Q, K and V must all be 3-D or all 4-D");
  }
  ASSIGN_OR_RETURN(sp.q, ReadHeads(n.input(g), "Q", qh, sp.batch));
  ASSIGN_OR_RETURN(sp.k, ReadHeads(n.input(g + 1), "K", kvh, sp.batch));
  ASSIGN_OR_RETURN(sp.v, ReadHeads(n.input(g + 2), "V", kvh, sp.batch));
  if (sp.k.heads != sp.v.heads || sp.k.len != sp.v.len || sp.k.dim != sp.q.dim)
    return InvalidArgument("K (", sp.k.heads, " heads, ", sp.k.len, " keys, size ", sp.k.dim, ") and V (", sp.v.heads,
                           " heads, ", sp.v.len, " keys) must agree, and K's head size with Q's (", sp.q.dim, ")");
  if (sp.q.heads % sp.k.heads != 0)
    return InvalidArgument(sp.q.heads, " query heads are not a multiple of ", sp.k.heads, " key/value heads");
  if ((n.input(g + 4) == nullptr) != (n.input(g + 5) == nullptr))
    return InvalidArgument("past_key and past_value must be given together");
  if (n.input(g + 4)) {
    ASSIGN_OR_RETURN(sp.pk, ReadHeads(n.input(g + 4), "past_key", 0, sp.batch));
    ASSIGN_OR_RETURN(sp.pv, ReadHeads(n.input(g + 5), "past_value", 0, sp.batch));
    if (sp.pk.heads != sp.k.heads || sp.pk.dim != sp.k.dim || sp.pv.heads != sp.v.heads || sp.pv.dim != sp.v.dim ||
        sp.pk.len != sp.pv.len)
      return InvalidArgument("past_key/past_value do not match K/V's heads and head sizes");
    sp.past = sp.pk.len;
  }
  sp.keys = sp.past + sp.k.len;
  sp.scale = n.HasAttr("scale") ? n.GetFloat("scale", 1.0f) : 1.0 / std::sqrt(static_cast<double>(sp.q.dim));
  // The reference scales Q and K by sqrt(scale) each, in the input type.
  const float root = static_cast<float>(std::sqrt(sp.scale));
  sp.scale = static_cast<double>(root) * root;
  sp.softcap = n.GetFloat("softcap", 0.0f);
  sp.causal = n.GetInt("is_causal", 0) != 0;
  sp.has_nonpad = n.input(g + 6) != nullptr;
  if (sp.has_nonpad) sp.nonpad_dtype = n.input(g + 6)->type.dtype;
  if (sp.has_nonpad && sp.past) return InvalidArgument("nonpad_kv_seqlen cannot be combined with past_key/past_value");
  if (const Value* m = n.input(g + 3)) {
    ASSIGN_OR_RETURN(std::vector<int64_t> md, nn::StaticDims(m, "attn_mask"));
    sp.has_mask = true;
    sp.mask_dtype = m->type.dtype;
    sp.mask_bool = m->type.dtype == DType::kBool;
    if (md.empty() || md.size() > 4)
      return InvalidArgument("attn_mask ", nn::DimsToString(md), " must have rank 1 to 4");
    sp.mask_len = md.back();
    if (sp.mask_len > sp.keys)
      return InvalidArgument("attn_mask ", nn::DimsToString(md), " has more columns than the ", sp.keys, " keys");
    const std::vector<int64_t> full{sp.batch, sp.q.heads, sp.q.len, sp.mask_len};
    int64_t acc = 1;
    for (size_t i = md.size(); i-- > 0;) {
      const size_t f = 4 - md.size() + i;
      if (md[i] != 1 && md[i] != full[f])
        return InvalidArgument("attn_mask ", nn::DimsToString(md),
                               " does not broadcast to (batch, q heads, q len, keys) ", nn::DimsToString(full));
      sp.mask_stride[f] = md[i] == 1 ? 0 : acc;
      sp.mask_dims[f] = md[i];
      acc *= md[i];
    }
    sp.mask_numel = acc;
  }
  return Status::OK();
}

}  // namespace dsc::attn
