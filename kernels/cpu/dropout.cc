// Dropout (opset 13) and SampleDropout: counter-based masks reproducible from their position, and
// DropoutGrad; SampleRandom draws numbers from the same counters.
#include <cstring>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/dropout_math.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

// Reads an optional scalar float input (float32 or float64).
StatusOr<float> ScalarFloat(const KernelContext& ctx, size_t i, float dflt) {
  if (!ctx.has_input(i)) return dflt;
  const TensorView& t = ctx.input(i);
  if (t.numel() != 1) return InvalidArgument("input ", i, " must be a scalar, has ", t.numel(), " elements");
  if (t.dtype == DType::kFloat32) return t.data<float>()[0];
  if (t.dtype == DType::kFloat64) return static_cast<float>(t.data<double>()[0]);
  return Unimplemented("input ", i, " of type ", DTypeName(t.dtype));
}

StatusOr<bool> ScalarBool(const KernelContext& ctx, size_t i, bool dflt) {
  if (!ctx.has_input(i)) return dflt;
  const TensorView& t = ctx.input(i);
  if (t.numel() != 1 || t.dtype != DType::kBool) return InvalidArgument("input ", i, " must be a bool scalar");
  return t.data<uint8_t>()[0] != 0;
}

// The optional (ratio, training_mode) inputs at `ratio_input` and the one after it; ratio must lie in [0, 1].
struct RatioAndMode {
  float ratio = 0.5f;
  bool training = false;
};

StatusOr<RatioAndMode> ReadRatioAndMode(const KernelContext& ctx, size_t ratio_input, bool training_default) {
  RatioAndMode r;
  ASSIGN_OR_RETURN(r.ratio, ScalarFloat(ctx, ratio_input, 0.5f));
  ASSIGN_OR_RETURN(r.training, ScalarBool(ctx, ratio_input + 1, training_default));
  if (!(r.ratio >= 0.0f && r.ratio <= 1.0f)) return InvalidArgument("ratio ", r.ratio, " is not in [0, 1]");
  return r;
}

// (data[, ratio][, training_mode]) -> output[, mask]
// Training: keep = u >= ratio with u uniform in [0,1) from a counter-based hash, so a mask is the
// same for any thread count and DropoutGrad can rely on the saved mask; output = data * keep / (1 - ratio).
// ONNX Dropout hashes (seed, step, node, element index); SampleDropout hashes (seed, step, node,
// the sample's index in the step's global batch, the element's index within its sample), so a
// sample draws the same mask whichever rank and micro-step it lands on, and no two samples share one.
// Otherwise (or ratio 0): output = data and the mask is all true.
class DropoutKernel : public nn::DescribedKernel {
 public:
  explicit DropoutKernel(bool per_sample = false) : per_sample_(per_sample) {}

  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(dims_, nn::StaticDims(node.input(0), "data"));
    n_ = nn::Product(dims_);
    node_id_ = dropout::MaskNodeId(node);
    has_seed_attr_ = node.HasAttr("seed");
    seed_attr_ = static_cast<uint64_t>(node.GetInt("seed", 0));
    desc_ = node.Describe();
    ASSIGN_OR_RETURN(layout_, dropout::ReadSampleLayout(node, dims_, per_sample_, "data"));
    return Status::OK();
  }

 private:
  Status Run(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(const RatioAndMode rm, ReadRatioAndMode(ctx, 1, /*training_default=*/false));
    const float ratio = rm.ratio;
    const float* x = ctx.input(0).data<float>();
    float* y = ctx.output(0).data<float>();
    uint8_t* mask = ctx.has_output(1) ? ctx.output(1).data<uint8_t>() : nullptr;
    if (!rm.training || ratio == 0.0f) {
      std::memcpy(y, x, static_cast<size_t>(n_) * sizeof(float));
      if (mask) std::memset(mask, 1, static_cast<size_t>(n_));
      return Status::OK();
    }
    // An explicit seed attribute replaces the run seed, as ONNX intends; the step still varies the mask.
    const uint64_t seed = has_seed_attr_ ? seed_attr_ : ctx.seed;
    dropout::DropoutMask m = layout_;
    m.key = dropout::DropoutKey(seed, ctx.step, node_id_);
    m.ratio = ratio;
    m.first_sample = ctx.first_sample;
    const float scale = dropout::DropoutScale(ratio);
    const int64_t n = n_;
#pragma omp parallel for if (n > nn::kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = m.Keep(i);
      y[i] = keep ? x[i] * scale : 0.0f;
      if (mask) mask[i] = keep;
    }
    return Status::OK();
  }

  bool per_sample_;
  std::vector<int64_t> dims_;
  int64_t n_ = 0;
  uint64_t node_id_ = 0, seed_attr_ = 0;
  bool has_seed_attr_ = false;
  dropout::DropoutMask layout_;  // key, ratio and first sample set per run
};

class SampleDropoutKernel : public DropoutKernel {
 public:
  SampleDropoutKernel() : DropoutKernel(/*per_sample=*/true) {}
};

// (dY, mask[, ratio][, training_mode]) -> dX = dY * mask / (1 - ratio).
// The optional 4th input (as in ONNX Runtime's DropoutGrad) makes an inference-mode forward an identity.
class DropoutGradKernel : public nn::DescribedKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> dy, nn::StaticDims(node.input(0), "dY"));
    ASSIGN_OR_RETURN(std::vector<int64_t> mask, nn::StaticDims(node.input(1), "mask"));
    if (dy != mask)
      return InvalidArgument("dY ", nn::DimsToString(dy), " and mask ", nn::DimsToString(mask), " differ");
    if (node.input(1)->type.dtype != DType::kBool) return InvalidArgument("mask must be bool");
    n_ = nn::Product(dy);
    desc_ = node.Describe();
    return Status::OK();
  }

 private:
  Status Run(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(const RatioAndMode rm, ReadRatioAndMode(ctx, 2, /*training_default=*/true));
    const float ratio = rm.ratio;
    const bool training = rm.training;
    const float* dy = ctx.input(0).data<float>();
    const uint8_t* mask = ctx.input(1).data<uint8_t>();
    float* dx = ctx.output(0).data<float>();
    const float scale = !training ? 1.0f : dropout::DropoutScale(ratio);
    const int64_t n = n_;
#pragma omp parallel for if (n > nn::kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
    return Status::OK();
  }

  int64_t n_ = 0;
};

// ([P]) -> Y: SampleRandom's draws (ir/dsc_ops.h), the same counters as SampleDropout's masks.
class SampleRandomKernel : public nn::DescribedKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(dims_, nn::StaticDims(node.output(0), "Y"));
    n_ = nn::Product(dims_);
    ASSIGN_OR_RETURN(draw_, dropout::ReadRandomDraw(node, dims_));
    if (draw_.dist == dropout::Distribution::kBernoulli) {
      ASSIGN_OR_RETURN(std::vector<int64_t> p, nn::StaticDims(node.input(0), "P"));
      if (p != dims_) return InvalidArgument("P ", nn::DimsToString(p), " and Y ", nn::DimsToString(dims_), " differ");
    }
    node_id_ = dropout::MaskNodeId(node);
    has_seed_attr_ = node.HasAttr("seed");
    seed_attr_ = static_cast<uint64_t>(node.GetInt("seed", 0));
    desc_ = node.Describe();
    return Status::OK();
  }

 private:
  Status Run(KernelContext& ctx) override {
    dropout::RandomDraw d = draw_;
    d.stream.key = dropout::DropoutKey(has_seed_attr_ ? seed_attr_ : ctx.seed, ctx.step, node_id_);
    d.stream.first_sample = ctx.first_sample;
    const float* p = d.dist == dropout::Distribution::kBernoulli ? ctx.input(0).data<float>() : nullptr;
    float* y = ctx.output(0).data<float>();
    const int64_t n = n_;
#pragma omp parallel for if (n > nn::kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) y[i] = d(i, p ? p[i] : 0.0f);
    return Status::OK();
  }

  std::vector<int64_t> dims_;
  int64_t n_ = 0;
  dropout::RandomDraw draw_;
  uint64_t node_id_ = 0, seed_attr_ = 0;
  bool has_seed_attr_ = false;
};

DSC_REGISTER_KERNEL("", "Dropout", kCpu, kFloat32, MakeFactory<DropoutKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSampleDropout, kCpu, kFloat32, MakeFactory<SampleDropoutKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kDropoutGrad, kCpu, kFloat32, MakeFactory<DropoutGradKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSampleRandom, kCpu, kFloat32, MakeFactory<SampleRandomKernel>());

}  // namespace
}  // namespace dsc
