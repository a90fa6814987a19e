// CUDA twin of kernels/cpu/rotary.cc: RotaryEmbedding (opset 23) for float32, float16 and bfloat16
// X (computed in float, rounded once); the caches are X's dtype or float32. One thread per rotated
// pair or passed-through feature; the pair math is kernels/common/rotary_math.h.
#include "kernels/common/rotary_math.h"
#include "kernels/common/rotary_node.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

template <typename T>
class RotaryCuda : public OpKernel, protected RotaryNode {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> x, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(std::vector<int64_t> cache, cpu::StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(std::vector<int64_t> sin_cache, cpu::StaticDims(node.input(2)));
    RETURN_IF_ERROR(CheckCaches(cache, sin_cache));
    const DType ct = node.input(1)->type.dtype;
    if (ct != node.input(2)->type.dtype || (ct != DTypeOf<T>() && ct != DType::kFloat32))
      return Unimplemented("RotaryEmbedding caches of ", DTypeName(ct), " and ", DTypeName(node.input(2)->type.dtype),
                           " for X of ", DTypeName(DTypeOf<T>()), " (they must be X's dtype or float32)");
    cache_f32_ = ct == DType::kFloat32;
    if (node.output(0)->type.dtype != DTypeOf<T>())
      return Unimplemented("RotaryEmbedding of ", DTypeName(DTypeOf<T>()), " into ", DTypeName(node.output(0)->type.dtype),
                           " (the CUDA kernel writes the dtype of its input)");
    RETURN_IF_ERROR(ReadLayout(node, x, cache));
    if (!has_pos_) return CheckPositions(cache, nullptr);
    ASSIGN_OR_RETURN(std::vector<int64_t> pos, cpu::StaticDims(node.input(3)));
    RETURN_IF_ERROR(CheckPositions(cache, &pos));
    const DType pt = node.input(3)->type.dtype;
    if (pt != DType::kInt64 && pt != DType::kInt32) return InvalidArgument("position_ids must be int64 or int32");
    pos64_ = pt == DType::kInt64;
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
  bool cache_f32_ = true, pos64_ = true;
};

DSC_REGISTER_CUDA_FLOATS("", "RotaryEmbedding", RotaryCuda);

}  // namespace
}  // namespace dsc::cuda
