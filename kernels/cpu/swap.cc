// CPU kernels of the NVMe swap ops (ir/swap_ops.h): SwapIn and SwapOut start a transfer between the
// rank's swap space (KernelContext::comm_state->swap_space(), runtime/nvme_swap.h) and the value X,
// SwapInWait and SwapOutWait wait for it. The transfer is recorded in the CommState under X's
// address, as a bucketed collective is under its buffer's, so the executor progresses it after
// every node and refuses a run that ends with one in flight. Any dtype: bytes move as they are.
#include "kernels/common/comm_state.h"
#include "kernels/common/swap_space.h"
#include "kernels/kernel.h"
#include "ir/swap_ops.h"

namespace dsc::cpu {
namespace {

class SwapKernel : public OpKernel {
 public:
  enum class Kind { kIn, kInWait, kOut, kOutWait };
  explicit SwapKernel(Kind kind) : kind_(kind) {}
  Status Init(const Node& n) {
    state_ = n.GetString(ops::kSwapStateAttr, "");
    if (state_.empty()) return InvalidArgument("attribute '", ops::kSwapStateAttr, "' (the swapped state's name) is required");
    name_ = n.Describe();
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    if (!ctx.comm_state || !ctx.comm_state->swap_space())
      return FailedPrecondition(name_, ": the run has no swap space for NVMe-offloaded state '", state_, "'");
    CommState& cs = *ctx.comm_state;
    const TensorView& x = kind_ == Kind::kIn ? ctx.output(0) : ctx.input(0);
    switch (kind_) {
      case Kind::kIn: {
        ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h, cs.swap_space()->StartRead(state_, x.ptr, x.nbytes()));
        return cs.Add(x.ptr, std::move(h), name_);
      }
      case Kind::kOut: {
        ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h, cs.swap_space()->StartWrite(state_, x.ptr, x.nbytes()));
        return cs.Add(x.ptr, std::move(h), name_);
      }
      case Kind::kInWait:
      case Kind::kOutWait: {
        ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h, cs.Take(x.ptr, name_));
        if (!h) return Status::OK();
        Status s = h->Wait();
        return s.ok() ? s : s.WithContext(name_);
      }
    }
    return Status::OK();
  }

 private:
  Kind kind_;
  std::string state_, name_;
};

KernelFactory Factory(SwapKernel::Kind kind) {
  return [kind](const Node& n) -> StatusOr<std::unique_ptr<OpKernel>> {
    auto k = std::make_unique<SwapKernel>(kind);
    Status s = k->Init(n);
    if (!s.ok()) return s.WithContext(n.Describe());
    return std::unique_ptr<OpKernel>(std::move(k));
  };
}

bool RegisterSwapKernels() {
  KernelRegistry& r = KernelRegistry::Global();
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64}) {
    r.Register(KernelKey{kDscDomain, ops::kSwapIn, DeviceKind::kCpu, t}, Factory(SwapKernel::Kind::kIn));
    r.Register(KernelKey{kDscDomain, ops::kSwapInWait, DeviceKind::kCpu, t}, Factory(SwapKernel::Kind::kInWait));
    r.Register(KernelKey{kDscDomain, ops::kSwapOut, DeviceKind::kCpu, t}, Factory(SwapKernel::Kind::kOut));
    r.Register(KernelKey{kDscDomain, ops::kSwapOutWait, DeviceKind::kCpu, t}, Factory(SwapKernel::Kind::kOutWait));
  }
  return true;
}

[[maybe_unused]] const bool kSwapKernelsRegistered = RegisterSwapKernels();

}  // namespace
}  // namespace dsc::cpu
