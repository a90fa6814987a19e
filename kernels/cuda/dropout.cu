// Dropout, SampleDropout, DropoutGrad and SampleRandom CUDA kernels, twins of kernels/cpu/dropout.cc. Masks come
// from kernels/common/dropout_math.h, the same function of (seed, step, node, sample, element) as on
// the CPU, so they are bit-identical to its masks whatever the grid. ratio and training_mode must
// be constants here (they are in the graphs autodiff differentiates): Compute never reads device
// memory on the host. (In inference mode the ratio may be computed: it is not used.)
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/dropout_math.h"
#include "kernels/cpu/core_util.h"
#include "kernels/cuda/elementwise.cuh"

namespace dsc::cuda {
namespace {

// The optional constant scalar input i: a float (ratio) or a bool (training_mode).
StatusOr<float> ConstRatio(const Node& node, size_t i, float dflt) {
  const Value* v = node.input(i);
  if (!v) return dflt;
  if (!v->is_initializer())
    return Unimplemented("the CUDA kernel needs a constant ratio (input ", i, "), '", v->name(),
                         "' is computed at run time");
  if (v->initializer().numel() != 1 || !IsFloat(v->type.dtype))
    return InvalidArgument("input ", i, " must be a float scalar");
  const float ratio = static_cast<float>(v->initializer().GetAsDouble(0));
  if (!(ratio >= 0.0f && ratio <= 1.0f)) return InvalidArgument("ratio ", ratio, " is not in [0, 1]");
  return ratio;
}
StatusOr<bool> ConstBool(const Node& node, size_t i, bool dflt) {
  const Value* v = node.input(i);
  if (!v) return dflt;
  if (!v->is_initializer())
    return Unimplemented("the CUDA kernel needs a constant training_mode (input ", i, "), '", v->name(),
                         "' is computed at run time");
  if (v->initializer().numel() != 1 || v->type.dtype != DType::kBool)
    return InvalidArgument("input ", i, " must be a bool scalar");
  return v->initializer().GetAsDouble(0) != 0.0;
}

template <typename T>
struct DropoutFn {
  dropout::DropoutMask m;
  float scale;
  const T* x;
  T* y;
  uint8_t* mask;  // null when the mask output is omitted
  bool index32;   // every index fits in 32 bits: Keep's divisions in 32 bits
  __device__ __forceinline__ void operator()(int64_t i) const {
    const bool keep = index32 ? m.Keep<uint32_t>(static_cast<uint32_t>(i)) : m.Keep(i);
    y[i] = FromFloat<T>(keep ? ToFloat(x[i]) * scale : 0.0f);
    if (mask) mask[i] = keep;
  }
};

// (data[, ratio][, training_mode]) -> output[, mask]; see kernels/cpu/dropout.cc.
template <typename T>
class DropoutCuda : public OpKernel {
 public:
  explicit DropoutCuda(bool per_sample = false) : per_sample_(per_sample) {}

  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(dims_, cpu::StaticDims(node.input(0)));
    n_ = cpu::Product(dims_);
    RETURN_IF_ERROR(ExpectDType(node, node.output(0), DTypeOf<T>(), "output"));
    if (node.num_outputs() > 1) RETURN_IF_ERROR(ExpectDType(node, node.output(1), DType::kBool, "mask"));
    ASSIGN_OR_RETURN(training_, ConstBool(node, 2, false));
    if (training_) {  // otherwise an identity, whatever the ratio
      ASSIGN_OR_RETURN(ratio_, ConstRatio(node, 1, 0.5f));
    }
    node_id_ = dropout::MaskNodeId(node);
    has_seed_attr_ = node.HasAttr("seed");
    seed_attr_ = static_cast<uint64_t>(node.GetInt("seed", 0));
    ASSIGN_OR_RETURN(layout_, dropout::ReadSampleLayout(node, dims_, per_sample_, "data"));
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const T* x = ctx.input(0).data<T>();
    T* y = ctx.output(0).data<T>();
    uint8_t* mask = ctx.has_output(1) ? ctx.output(1).data<uint8_t>() : nullptr;
    if (!training_ || ratio_ == 0.0f) {
      const size_t bytes = static_cast<size_t>(n_) * sizeof(T);
      if (x != y && bytes > 0) DSC_CUDA_CHECK(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, r->compute));
      if (mask && n_ > 0) DSC_CUDA_CHECK(cudaMemsetAsync(mask, 1, static_cast<size_t>(n_), r->compute));
      return Status::OK();
    }
    // An explicit seed attribute replaces the run seed, as ONNX intends; the step still varies the mask.
    const uint64_t seed = has_seed_attr_ ? seed_attr_ : ctx.seed;
    dropout::DropoutMask m = layout_;
    m.key = dropout::DropoutKey(seed, ctx.step, node_id_);
    m.ratio = ratio_;
    m.first_sample = ctx.first_sample;
    const bool index32 = n_ < (int64_t{1} << 31);
    return LaunchMap(ctx, n_, DropoutFn<T>{m, dropout::DropoutScale(ratio_), x, y, mask, index32});
  }

 private:
  bool per_sample_;
  std::vector<int64_t> dims_;
  int64_t n_ = 0;
  float ratio_ = 0.5f;
  bool training_ = false;
  uint64_t node_id_ = 0, seed_attr_ = 0;
  bool has_seed_attr_ = false;
  dropout::DropoutMask layout_;  // key, ratio and first sample set per run
};

template <typename T>
class SampleDropoutCuda : public DropoutCuda<T> {
 public:
  SampleDropoutCuda() : DropoutCuda<T>(/*per_sample=*/true) {}
};

template <typename T>
struct DropoutGradFn {
  float scale;
  __device__ __forceinline__ T operator()(T dy, uint8_t keep) const {
    return FromFloat<T>(keep ? ToFloat(dy) * scale : 0.0f);
  }
};

// (dY, mask[, ratio][, training_mode]) -> dX = dY * mask / (1 - ratio); an inference-mode forward
// (training_mode false) makes it an identity on the kept elements.
template <typename T>
class DropoutGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> dy, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(std::vector<int64_t> mask, cpu::StaticDims(node.input(1)));
    if (dy != mask) return InvalidArgument("dY ", DimsToString(dy), " and mask ", DimsToString(mask), " differ");
    if (node.input(1)->type.dtype != DType::kBool) return InvalidArgument("mask must be bool");
    RETURN_IF_ERROR(ExpectDType(node, node.output(0), DTypeOf<T>(), "dX"));
    ASSIGN_OR_RETURN(const bool training, ConstBool(node, 3, true));
    scale_ = 1.0f;
    if (training) {
      ASSIGN_OR_RETURN(const float ratio, ConstRatio(node, 2, 0.5f));
      scale_ = dropout::DropoutScale(ratio);
    }
    n_ = cpu::Product(dy);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    return LaunchVecMap(ctx, n_, DropoutGradFn<T>{scale_}, ctx.output(0).data<T>(), ctx.input(0).data<T>(),
                        ctx.input(1).data<uint8_t>());
  }

 private:
  float scale_ = 2.0f;
  int64_t n_ = 0;
};

template <typename T>
struct RandomFn {
  dropout::RandomDraw d;
  const T* p;  // Bernoulli's probabilities, else null
  T* y;
  bool index32;
  __device__ __forceinline__ void operator()(int64_t i) const {
    const float pi = p ? ToFloat(p[i]) : 0.0f;
    y[i] = FromFloat<T>(index32 ? d(static_cast<uint32_t>(i), pi) : d(i, pi));
  }
};

// ([P]) -> Y: SampleRandom's draws, bit for bit the CPU kernel's for uniform and Bernoulli draws.
template <typename T>
class SampleRandomCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(dims_, cpu::StaticDims(node.output(0)));
    n_ = cpu::Product(dims_);
    RETURN_IF_ERROR(ExpectDType(node, node.output(0), DTypeOf<T>(), "Y"));
    ASSIGN_OR_RETURN(draw_, dropout::ReadRandomDraw(node, dims_));
    if (draw_.dist == dropout::Distribution::kBernoulli) {
      RETURN_IF_ERROR(ExpectDType(node, node.input(0), DTypeOf<T>(), "P"));
      ASSIGN_OR_RETURN(std::vector<int64_t> p, cpu::StaticDims(node.input(0)));
      if (p != dims_) return InvalidArgument("P ", DimsToString(p), " and Y ", DimsToString(dims_), " differ");
    }
    node_id_ = dropout::MaskNodeId(node);
    has_seed_attr_ = node.HasAttr("seed");
    seed_attr_ = static_cast<uint64_t>(node.GetInt("seed", 0));
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    dropout::RandomDraw d = draw_;
    d.stream.key = dropout::DropoutKey(has_seed_attr_ ? seed_attr_ : ctx.seed, ctx.step, node_id_);
    d.stream.first_sample = ctx.first_sample;
    const T* p = d.dist == dropout::Distribution::kBernoulli ? ctx.input(0).data<T>() : nullptr;
    return LaunchMap(ctx, n_, RandomFn<T>{d, p, ctx.output(0).data<T>(), n_ < (int64_t{1} << 31)});
  }

 private:
  std::vector<int64_t> dims_;
  int64_t n_ = 0;
  dropout::RandomDraw draw_;
  uint64_t node_id_ = 0, seed_attr_ = 0;
  bool has_seed_attr_ = false;
};

DSC_REGISTER_CUDA_FLOATS("", "Dropout", DropoutCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kSampleDropout, SampleDropoutCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kDropoutGrad, DropoutGradCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kSampleRandom, SampleRandomCuda);

}  // namespace
}  // namespace dsc::cuda
