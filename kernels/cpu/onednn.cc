// oneDNN's engine, its description for dsrun's device line, and the plain<->blocked reorders.
#include "kernels/cpu/onednn.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <vector>

#include "ir/status.h"

namespace dsc::cpu {

const dnnl::engine& OnednnEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

namespace {
std::atomic<bool> g_onednn_enabled{true};
}  // namespace

bool OnednnEnabled() { return g_onednn_enabled.load(std::memory_order_relaxed); }
void SetOnednnForTesting(bool enabled) { g_onednn_enabled.store(enabled, std::memory_order_relaxed); }

namespace {
const char* IsaName(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "no JIT ISA";
  }
}
}  // namespace

std::string OnednnDescription() {
  const dnnl_version_t* v = dnnl_version();
  return StrCat("oneDNN ", v->major, ".", v->minor, ".", v->patch, " (", IsaName(dnnl_get_effective_cpu_isa()), ")");
}

namespace {
// This thread's reorder buffers, one per slot, 64-byte aligned; they only grow.
char* ScratchSlot(int slot, size_t bytes) {
  struct Buffer {
    std::unique_ptr<char, decltype(&std::free)> data{nullptr, &std::free};
    size_t size = 0;
  };
  thread_local std::vector<Buffer> slots;
  if (slots.size() <= static_cast<size_t>(slot)) slots.resize(slot + 1);
  Buffer& b = slots[slot];
  if (b.size < bytes) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    b.data.reset(static_cast<char*>(std::aligned_alloc(64, rounded)));
    if (!b.data) throw dnnl::error(dnnl_out_of_memory, "no host memory for a reorder buffer");
    b.size = rounded;
  }
  return b.data.get();
}
}  // namespace

OnednnLayout::OnednnLayout(const dnnl::memory::desc& user, const dnnl::memory::desc& inner, int slot)
    : user_(user, OnednnEngine(), DNNL_MEMORY_NONE), same_(user == inner), slot_(slot) {
  if (same_) return;
  inner_ = dnnl::memory(inner, OnednnEngine(), DNNL_MEMORY_NONE);
  to_inner_ = dnnl::reorder(user_, inner_);
  to_user_ = dnnl::reorder(inner_, user_);
}

dnnl::memory OnednnLayout::Inner() {
  inner_.set_data_handle(ScratchSlot(slot_, inner_.get_desc().get_size()));
  return inner_;
}

dnnl::memory OnednnLayout::In(dnnl::stream& s, const void* ptr) {
  user_.set_data_handle(const_cast<void*>(ptr));
  if (same_) return user_;
  dnnl::memory inner = Inner();
  to_inner_.execute(s, user_, inner);
  return inner;
}

dnnl::memory OnednnLayout::Target(void* ptr) {
  user_.set_data_handle(ptr);
  return same_ ? user_ : Inner();
}

void OnednnLayout::Out(dnnl::stream& s, void* ptr) {
  user_.set_data_handle(ptr);
  if (!same_) to_user_.execute(s, inner_, user_);
}

}  // namespace dsc::cpu
