// CPU kernels of ToHost and FromHost (ir/host_copy_ops.h): on a CPU rank the device arena and the
// host arena are both host memory, so each is a memcpy of the value's bytes. Every movement dtype.
#include <cstring>

#include "ir/host_copy_ops.h"
#include "kernels/common/host_copy_node.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

class HostCopyKernel : public OpKernel {
 public:
  Status Init(const Node& node) { return host_copy::CheckNode(node); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    if (x.nbytes() > 0) std::memcpy(y.ptr, x.ptr, x.nbytes());
    return Status::OK();
  }
};

[[maybe_unused]] const bool kRegistered = [] {
  for (const char* op : {ops::kToHost, ops::kFromHost})
    for (DType t : kMovementDTypes)
      KernelRegistry::Global().Register(KernelKey{kDscDomain, op, DeviceKind::kCpu, t}, MakeFactory<HostCopyKernel>());
  return true;
}();

}  // namespace
}  // namespace dsc::cpu
