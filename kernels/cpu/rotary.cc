// RotaryEmbedding (opset 23). Its gradient is the same op with sin negated (a rotation's
// transpose is the rotation by minus the angle), so there is no gradient kernel.
//
// X is (B, H, S, D) or (B, S, H*D) with num_heads; the first rotary_embedding_dim (default D)
// features of each head are rotated in pairs (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos), the
// pairs being the two halves or, with interleaved, even/odd features. cos/sin rows come from
// cache[position_ids[b, s]] (cache (max_pos, rot/2)) or, without position_ids, cache[b, s]
// (cache (B, S, rot/2)).
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/common/rotary_math.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

class RotaryKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(node.input(0), "X"));
    ASSIGN_OR_RETURN(std::vector<int64_t> cache, nn::StaticDims(node.input(1), "cos_cache"));
    ASSIGN_OR_RETURN(std::vector<int64_t> sin_cache, nn::StaticDims(node.input(2), "sin_cache"));
    if (cache != sin_cache)
      return InvalidArgument("cos_cache ", nn::DimsToString(cache), " and sin_cache ", nn::DimsToString(sin_cache),
                             " differ");
    const int64_t num_heads = node.GetInt("num_heads", 0);
    interleaved_ = node.GetInt("interleaved", 0) != 0;
    if (x.size() == 4) {
      b_ = x[0], h_ = x[1], s_ = x[2], d_ = x[3];
      // (b, s, h) -> offset of the head's features in (B, H, S, D)
      sb_ = h_ * s_ * d_, sh_ = s_ * d_, ss_ = d_;
    } else if (x.size() == 3) {
      if (num_heads <= 0 || x[2] % num_heads != 0)
        return InvalidArgument("3-D X ", nn::DimsToString(x), " needs num_heads dividing its last dim, got ",
                               num_heads);
      b_ = x[0], s_ = x[1], h_ = num_heads, d_ = x[2] / num_heads;
      sb_ = s_ * h_ * d_, ss_ = h_ * d_, sh_ = d_;
    } else {
      return InvalidArgument("X ", nn::DimsToString(x), " must be 3-D or 4-D");
    }
    rot_ = node.GetInt("rotary_embedding_dim", 0);
    if (rot_ == 0) rot_ = d_;
    if (rot_ < 0 || rot_ > d_ || rot_ % 2 != 0)
      return InvalidArgument("rotary_embedding_dim ", rot_, " must be even and at most the head size ", d_);
    half_ = rot_ / 2;
    has_pos_ = node.input(3) != nullptr;
    if (cache.empty() || cache.back() != half_)
      return InvalidArgument("the caches' last dim ", nn::DimsToString(cache), " must be rotary_embedding_dim/2 = ",
                             half_);
    if (has_pos_) {
      ASSIGN_OR_RETURN(std::vector<int64_t> pos, nn::StaticDims(node.input(3), "position_ids"));
      if (cache.size() != 2 || pos != std::vector<int64_t>{b_, s_})
        return InvalidArgument("with position_ids ", nn::DimsToString(pos), " the caches must be (max_position, ",
                               half_, ") and position_ids (", b_, ",", s_, "); caches are ", nn::DimsToString(cache));
      max_pos_ = cache[0];
    } else if (cache != std::vector<int64_t>{b_, s_, half_}) {
      return InvalidArgument("without position_ids the caches must be (", b_, ",", s_, ",", half_, "), got ",
                             nn::DimsToString(cache));
    }
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    const float* cosc = ctx.input(1).data<float>();
    const float* sinc = ctx.input(2).data<float>();
    float* y = ctx.output(0).data<float>();
    std::vector<int64_t> rows(static_cast<size_t>(b_ * s_));
    for (int64_t i = 0; i < b_ * s_; ++i) {
      int64_t r = i;
      if (has_pos_) {
        const TensorView& p = ctx.input(3);
        r = p.dtype == DType::kInt32 ? p.data<int32_t>()[i] : p.data<int64_t>()[i];
        if (r < 0 || r >= max_pos_)
          return InvalidArgument("position_ids[", i, "] = ", r, " is outside the caches' ", max_pos_, " rows");
      }
      rows[static_cast<size_t>(i)] = r;
    }
    const int64_t half = half_, d = d_;
#pragma omp parallel for collapse(2) if (b_ * s_ * h_ * d_ > nn::kParallelThreshold)
    for (int64_t b = 0; b < b_; ++b)
      for (int64_t s = 0; s < s_; ++s) {
        const int64_t row = rows[static_cast<size_t>(b * s_ + s)];
        const float* c = cosc + row * half;
        const float* sn = sinc + row * half;
        for (int64_t h = 0; h < h_; ++h) {
          const int64_t off = b * sb_ + h * sh_ + s * ss_;
          const float* xp = x + off;
          float* yp = y + off;
          for (int64_t k = 0; k < half; ++k) {
            int64_t i1, i2;
            RotaryPair(interleaved_, k, half, &i1, &i2);
            RotatePair(xp[i1], xp[i2], c[k], sn[k], &yp[i1], &yp[i2]);
          }
          for (int64_t k = 2 * half; k < d; ++k) yp[k] = xp[k];
        }
      }
    return Status::OK();
  }

 private:
  bool interleaved_ = false, has_pos_ = false;
  int64_t b_ = 1, h_ = 1, s_ = 1, d_ = 1, rot_ = 0, half_ = 0, max_pos_ = 0;
  int64_t sb_ = 0, sh_ = 0, ss_ = 0;  // element strides of batch, head and position in X
};

DSC_REGISTER_KERNEL("", "RotaryEmbedding", kCpu, kFloat32, MakeFactory<RotaryKernel>());

}  // namespace
}  // namespace dsc
