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
#include "kernels/common/rotary_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

class RotaryKernel : public OpKernel, protected RotaryNode {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(node.input(0), "X"));
    ASSIGN_OR_RETURN(std::vector<int64_t> cache, nn::StaticDims(node.input(1), "cos_cache"));
    ASSIGN_OR_RETURN(std::vector<int64_t> sin_cache, nn::StaticDims(node.input(2), "sin_cache"));
    RETURN_IF_ERROR(CheckCaches(cache, sin_cache));
    RETURN_IF_ERROR(ReadLayout(node, x, cache));
    if (!has_pos_) return CheckPositions(cache, nullptr);
    ASSIGN_OR_RETURN(std::vector<int64_t> pos, nn::StaticDims(node.input(3), "position_ids"));
    return CheckPositions(cache, &pos);
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
};

DSC_REGISTER_KERNEL("", "RotaryEmbedding", kCpu, kFloat32, MakeFactory<RotaryKernel>());

}  // namespace
}  // namespace dsc
