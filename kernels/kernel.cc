// Kernel registry.
#include "kernels/kernel.h"

#include "ir/dsc_ops.h"
#include "runtime/communicator.h"  // interface only: the group sizes

#include <algorithm>
#include <tuple>

namespace dsc {

bool KernelKey::operator<(const KernelKey& o) const {
  return std::tie(domain, op_type, device, dtype) < std::tie(o.domain, o.op_type, o.device, o.dtype);
}

KernelRegistry& KernelRegistry::Global() {
  static KernelRegistry* registry = new KernelRegistry();
  return *registry;
}

void KernelRegistry::Register(const KernelKey& key, KernelFactory factory) {
  entries_.emplace_back(key, std::move(factory));
}

const KernelFactory* KernelRegistry::Find(const KernelKey& key) const {
  for (const auto& [k, f] : entries_)
    if (!(k < key) && !(key < k)) return &f;
  // ai.dscompile.Attention is ONNX's Attention under our domain (the recognize pass makes it in
  // graphs whose opset predates 23): it runs the standard op's kernels, whatever device.
  if (key.domain == kDscDomain && key.op_type == ops::kAttention) {
    KernelKey standard = key;
    standard.domain.clear();
    return Find(standard);
  }
  return nullptr;
}

std::vector<KernelKey> KernelRegistry::Keys() const {
  std::vector<KernelKey> keys;
  for (const auto& e : entries_) keys.push_back(e.first);
  std::sort(keys.begin(), keys.end());
  return keys;
}

DType KernelDType(const Node& node) {
  for (const Value* v : node.inputs())
    if (v) return v->type.dtype;
  return node.num_outputs() ? node.output(0)->type.dtype : DType::kUndefined;
}

Status RankAndWorld(const KernelContext& ctx, int64_t compiled_world, const std::string& what, int64_t* rank,
                    int64_t* world) {
  *world = ctx.comm ? ctx.comm->size() : 1;
  *rank = ctx.comm ? ctx.comm->rank() : 0;
  if (compiled_world > 0 && compiled_world != *world)
    return FailedPrecondition(what, " was compiled for ", compiled_world, " ranks but runs on ", *world);
  return Status::OK();
}

StatusOr<std::unique_ptr<OpKernel>> KernelRegistry::Create(const Node& node, DeviceKind device) const {
  if (NeedsHalfAdaptor(node, *this, device)) return CreateHalfAdaptor(node, *this, device);
  KernelKey key{node.domain(), node.op_type(), device, KernelDType(node)};
  const KernelFactory* f = Find(key);
  if (!f)
    return Unimplemented(node.Describe(), ": no ", device == DeviceKind::kCpu ? "CPU" : "CUDA", " kernel for ",
                         DTypeName(key.dtype), " inputs");
  StatusOr<std::unique_ptr<OpKernel>> k = (*f)(node);
  // A native half kernel that does not cover this node (ScatterElements' reductions move only
  // float32 through arithmetic) leaves it to the float32 kernel through the adaptor.
  if (!k.ok() && k.status().code() == StatusCode::kUnimplemented && device == DeviceKind::kCpu &&
      IsHalf(key.dtype)) {
    StatusOr<std::unique_ptr<OpKernel>> adapted = CreateHalfAdaptor(node, *this, device);
    if (adapted.ok()) return adapted;
  }
  return k;
}

}  // namespace dsc
