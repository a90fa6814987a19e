// CUDA twin of kernels/cpu/rotary.cc: RotaryEmbedding (opset 23) for float32, float16 and bfloat16
// X (computed in float, rounded once); the caches are X's dtype or float32. One thread per rotated
// pair or passed-through feature; the pair math is kernels/common/rotary_math.h.
#include "kernels/common/rotary_math.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

template <typename T>
class RotaryCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> x, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(std::vector<int64_t> cache, cpu::StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(std::vector<int64_t> sin_cache, cpu::StaticDims(node.input(2)));
    if (cache != sin_cache)
      return InvalidArgument("cos_cache ", DimsToString(cache), " and sin_cache ", DimsToString(sin_cache), " differ");
    const DType ct = node.input(1)->type.dtype;
    if (ct != node.input(2)->type.dtype || (ct != DTypeOf<T>() && ct != DType::kFloat32))
      return Unimplemented("RotaryEmbedding caches of ", DTypeName(ct), " and ", DTypeName(node.input(2)->type.dtype),
                           " for X of ", DTypeName(DTypeOf<T>()), " (they must be X's dtype or float32)");
    cache_f32_ = ct == DType::kFloat32;
    if (node.output(0)->type.dtype != DTypeOf<T>())
      return Unimplemented("RotaryEmbedding of ", DTypeName(DTypeOf<T>()), " into ", DTypeName(node.output(0)->type.dtype),
                           " (the CUDA kernel writes the dtype of its input)");
    const int64_t num_heads = node.GetInt("num_heads", 0);
    interleaved_ = node.GetInt("interleaved", 0) != 0;
    if (x.size() == 4) {
      b_ = x[0], h_ = x[1], s_ = x[2], d_ = x[3];
      sb_ = h_ * s_ * d_, sh_ = s_ * d_, ss_ = d_;
    } else if (x.size() == 3) {
      if (num_heads <= 0 || x[2] % num_heads != 0)
        return InvalidArgument("3-D X ", DimsToString(x), " needs num_heads dividing its last dim, got ", num_heads);
      b_ = x[0], s_ = x[1], h_ = num_heads, d_ = x[2] / num_heads;
      sb_ = s_ * h_ * d_, ss_ = h_ * d_, sh_ = d_;
    } else {
      return InvalidArgument("X ", DimsToString(x), " must be 3-D or 4-D");
    }
    int64_t rot = node.GetInt("rotary_embedding_dim", 0);
    if (rot == 0) rot = d_;
    if (rot < 0 || rot > d_ || rot % 2 != 0)
      return InvalidArgument("rotary_embedding_dim ", rot, " must be even and at most the head size ", d_);
    half_ = rot / 2;
    has_pos_ = node.input(3) != nullptr;
    if (cache.empty() || cache.back() != half_)
      return InvalidArgument("the caches' last dim ", DimsToString(cache), " must be rotary_embedding_dim/2 = ", half_);
    if (has_pos_) {
      ASSIGN_OR_RETURN(std::vector<int64_t> pos, cpu::StaticDims(node.input(3)));
      if (cache.size() != 2 || pos != std::vector<int64_t>{b_, s_})
        return InvalidArgument("with position_ids ", DimsToString(pos), " the caches must be (max_position, ", half_,
                               ") and position_ids (", b_, ",", s_, "); caches are ", DimsToString(cache));
      const DType pt = node.input(3)->type.dtype;
      if (pt != DType::kInt64 && pt != DType::kInt32) return InvalidArgument("position_ids must be int64 or int32");
      pos64_ = pt == DType::kInt64;
      max_pos_ = cache[0];
    } else if (cache != std::vector<int64_t>{b_, s_, half_}) {
      return InvalidArgument("without position_ids the caches must be (", b_, ",", s_, ",", half_, "), got ",
                             DimsToString(cache));
    }
    return Status::OK();
  }

  // A position id outside the caches' rows is clamped to the nearest row here (a kernel cannot
  // fail); the CPU kernel reports it as an error.
  Status Compute(KernelContext& ctx) override {
    const T* x = ctx.input(0).data<T>();
    const void* cosc = ctx.input(1).ptr;
    const void* sinc = ctx.input(2).ptr;
    const void* pos = has_pos_ ? ctx.input(3).ptr : nullptr;
    T* y = ctx.output(0).data<T>();
    const bool cache_f32 = cache_f32_, pos64 = pos64_, interleaved = interleaved_;
    const int64_t per_head = d_ - half_;  // half_ pairs, then the d_ - 2 * half_ features passed through
    const int64_t half = half_, h = h_, s = s_, sb = sb_, sh = sh_, ss = ss_, max_pos = max_pos_;
    return LaunchMap(ctx, b_ * s_ * h_ * per_head, [=] __device__(int64_t t) {
      const int64_t q = t % per_head, unit = t / per_head;
      const int64_t hi = unit % h, si = unit / h % s, bi = unit / (h * s);
      const int64_t off = bi * sb + hi * sh + si * ss;
      if (q >= half) {
        y[off + q + half] = x[off + q + half];
        return;
      }
      int64_t row = bi * s + si;
      if (pos) {
        row = LoadIndex(pos, pos64, row);
        row = row < 0 ? 0 : row >= max_pos ? max_pos - 1 : row;
      }
      const int64_t ci = row * half + q;
      const float c = cache_f32 ? static_cast<const float*>(cosc)[ci] : ToFloat(static_cast<const T*>(cosc)[ci]);
      const float sn = cache_f32 ? static_cast<const float*>(sinc)[ci] : ToFloat(static_cast<const T*>(sinc)[ci]);
      int64_t i1, i2;
      RotaryPair(interleaved, q, half, &i1, &i2);
      float y1, y2;
      RotatePair(ToFloat(x[off + i1]), ToFloat(x[off + i2]), c, sn, &y1, &y2);
      y[off + i1] = FromFloat<T>(y1);
      y[off + i2] = FromFloat<T>(y2);
    });
  }

 private:
  bool interleaved_ = false, has_pos_ = false, cache_f32_ = true, pos64_ = true;
  int64_t b_ = 1, h_ = 1, s_ = 1, d_ = 1, half_ = 0, max_pos_ = 0;
  int64_t sb_ = 0, sh_ = 0, ss_ = 0;  // element strides of batch, head and position in X
};

DSC_REGISTER_CUDA_FLOATS("", "RotaryEmbedding", RotaryCuda);

}  // namespace
}  // namespace dsc::cuda
