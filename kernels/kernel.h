// The kernel interface: kernels are registered by (domain, op, device, dtype), created once per
// node with its static shapes and attributes, and run many times on tensor views.
//
//   class ReluKernel : public OpKernel {
//     Status Compute(KernelContext& ctx) override { ... ctx.input(0).data<float>() ... }
//   };
//   DSC_REGISTER_KERNEL("", "Relu", kCpu, kFloat32, [](const Node& n) -> KernelOrError { ... });
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace dsc {

class Communicator;  // runtime/communicator.h
class CommState;     // kernels/common/comm_state.h
namespace cuda {
struct Resources;  // kernels/cuda/cuda_resources.h
}

enum class DeviceKind : uint8_t { kCpu, kCuda };

// A non-owning view of one tensor in device memory.
struct TensorView {
  DType dtype = DType::kUndefined;
  std::vector<int64_t> dims;
  void* ptr = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype); }
  template <typename T> T* data() const { return static_cast<T*>(ptr); }
};

// Per-run information a kernel may need beyond its tensors.
struct KernelContext {
  std::vector<const TensorView*> inputs;  // nullptr for an omitted optional input
  std::vector<TensorView*> outputs;       // nullptr for an omitted optional output
  uint64_t seed = 0;                      // run seed (Dropout): masks depend on (seed, step, node)
  int64_t step = 0;                       // 1-based step of the run loop (skipped steps count): Dropout's key
  // What the program's dsc::step input holds this run: the 1-based count of applied optimizer
  // steps plus one (0 when the caller does not say). An AllReduce's until_step compares with it.
  int64_t optimizer_step = 0;
  // Index in the step's global batch of this micro-batch's first sample (SampleDropout keys a
  // sample's mask by it, so masks do not depend on how the batch is split over ranks and micro-steps).
  int64_t first_sample = 0;
  int num_threads = 1;
  // The data-parallel group (collective ops); null means a single rank.
  Communicator* comm = nullptr;
  // The CUDA device's streams and handles; null on the CPU.
  cuda::Resources* cuda = nullptr;
  // Collectives in flight between a *Start node and its CollectiveWait, and the live gathered
  // parameter elements (Release); owned by the executor for one program. Null: no bucketed
  // collectives may run.
  CommState* comm_state = nullptr;

  const TensorView& input(size_t i) const { return *inputs[i]; }
  bool has_input(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  TensorView& output(size_t i) const { return *outputs[i]; }
  bool has_output(size_t i) const { return i < outputs.size() && outputs[i] != nullptr; }
};

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  virtual Status Compute(KernelContext& ctx) = 0;
};

using KernelFactory = std::function<StatusOr<std::unique_ptr<OpKernel>>(const Node& node)>;

struct KernelKey {
  std::string domain;
  std::string op_type;
  DeviceKind device;
  DType dtype;  // the dtype that selects the kernel: of input 0, or of output 0 for source ops
  bool operator<(const KernelKey& o) const;
};

class KernelRegistry {
 public:
  static KernelRegistry& Global();
  void Register(const KernelKey& key, KernelFactory factory);
  const KernelFactory* Find(const KernelKey& key) const;
  // Creates the kernel for a node, choosing the dtype from its inputs/outputs; errors name the node.
  StatusOr<std::unique_ptr<OpKernel>> Create(const Node& node, DeviceKind device) const;
  std::vector<KernelKey> Keys() const;

 private:
  std::vector<std::pair<KernelKey, KernelFactory>> entries_;
};

// The dtype that selects a node's kernel.
DType KernelDType(const Node& node);

// Half precision (kernels/cpu/half_adaptor.cc). A CPU node with float16/bfloat16 inputs or outputs
// runs through the op's float32 kernel (half inputs widened, half outputs rounded once to nearest
// even) when no kernel is registered for its dtype, or when its kernel is selected as float32 but
// other values are half and the op registers no half kernel (ops that do, such as Cast, MatMul,
// Gemm, Accumulate or SumSquares, take mixed dtypes in their float32 kernel), and when a native half
// kernel refuses the node as unimplemented (a reduction it only does in float32). KernelRegistry::
// Create applies this; the two functions are public for tests and tools that list kernels.
bool NeedsHalfAdaptor(const Node& node, const KernelRegistry& registry, DeviceKind device);
StatusOr<std::unique_ptr<OpKernel>> CreateHalfAdaptor(const Node& node, const KernelRegistry& registry,
                                                      DeviceKind device);

// This rank and the group's size from ctx.comm (0 and 1 without one). When `compiled_world` is
// positive and differs from the size, an error: "<what> was compiled for W ranks but runs on N".
Status RankAndWorld(const KernelContext& ctx, int64_t compiled_world, const std::string& what, int64_t* rank,
                    int64_t* world);

struct KernelRegistrar {
  KernelRegistrar(const char* domain, const char* op, DeviceKind device, DType dtype, KernelFactory f) {
    KernelRegistry::Global().Register(KernelKey{domain, op, device, dtype}, std::move(f));
  }
};

#define DSC_KERNEL_CONCAT_(a, b) a##b
#define DSC_KERNEL_CONCAT(a, b) DSC_KERNEL_CONCAT_(a, b)
// Registers a factory at static-initialisation time. Kernel libraries are linked whole
// (WHOLE_ARCHIVE) so these registrations are never dropped by the linker.
// The factory is variadic so template arguments with commas need no extra parentheses.
#define DSC_REGISTER_KERNEL(domain, op, device, dtype, ...)                              \
  static ::dsc::KernelRegistrar DSC_KERNEL_CONCAT(dsc_kernel_registrar_, __COUNTER__)( \
      domain, op, ::dsc::DeviceKind::device, ::dsc::DType::dtype, __VA_ARGS__)

// Shorthand for kernels with no per-node state beyond the node itself.
template <typename K>
KernelFactory MakeFactory() {
  return [](const Node& n) -> StatusOr<std::unique_ptr<OpKernel>> {
    auto k = std::make_unique<K>();
    Status s = k->Init(n);
    if (!s.ok()) return s.WithContext(n.Describe());
    return std::unique_ptr<OpKernel>(std::move(k));
  };
}

}  // namespace dsc
