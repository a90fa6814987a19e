// oneDNN (Debian's libdnnl 2.6, GNU OpenMP build) for the CPU kernels that run through it: Conv and
// ConvGrad (kernels/cpu/conv.cc); the engine, what dsrun prints about it, and the reorders between our
// plain NCHW tensors and the blocked layouts oneDNN's fast kernels want.
//
// Why oneDNN: its JIT convolutions (direct, blocked by 16 channels, AVX-512) run ResNet-style convs
// several times faster than im2col + sgemm, and its threads are our OpenMP threads (libgomp), so it
// adds no thread pool of its own. A kernel builds its primitives once, at Init, for its node's static
// shapes; Compute only binds pointers. Our own kernels stay as the fallback (and the readable spec):
// a node oneDNN refuses runs through them, and the choice is made in the kernel's Init.
//
//   cpu::OnednnLayout src(user_md, pd.src_desc(), 0);  // at Init: a reorder only if layouts differ
//   dnnl::memory m = src.In(stream, x_ptr);            // in Compute: runs the reorder, returns what to pass
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <string>

namespace dsc::cpu {

// The CPU engine every oneDNN kernel uses (one per process, created on first use).
const dnnl::engine& OnednnEngine();

// "oneDNN 2.6.3 (avx512_core_bf16)": the library's version and the widest ISA it dispatches to here.
std::string OnednnDescription();

// Whether kernels initialised from now on may run through oneDNN (true unless a test turned it off).
bool OnednnEnabled();
// Tests turn oneDNN off to run the kernels' own path (im2col + sgemm for convolutions, the readable spec
// and the fallback) on nodes oneDNN would take; kernels initialised after the call see it.
void SetOnednnForTesting(bool enabled);

// Moves a tensor between our plain layout (`user`) and the layout a primitive chose (`inner`). When
// the two are the same the primitive reads and writes our buffer directly; otherwise Compute reorders
// into or out of a buffer in the inner layout. Those buffers live only during one Compute, so every
// kernel of a thread shares them: `slot` names one (the layouts a kernel uses at once take different
// slots), grown to the largest size asked of it. Per kernel, they would hold a second copy of every
// convolution's input, output and weights for the life of the plan.
class OnednnLayout {
 public:
  OnednnLayout() = default;
  OnednnLayout(const dnnl::memory::desc& user, const dnnl::memory::desc& inner, int slot);
  // Input side: points the user memory at `ptr`, reorders it into the inner buffer when needed, and
  // returns the memory to hand to the primitive.
  dnnl::memory In(dnnl::stream& s, const void* ptr);
  // Output side: the memory the primitive writes; Out then copies it into `ptr` when layouts differ.
  dnnl::memory Target(void* ptr);
  void Out(dnnl::stream& s, void* ptr);

 private:
  dnnl::memory Inner();
  dnnl::memory user_, inner_;
  dnnl::reorder to_inner_, to_user_;
  bool same_ = true;
  int slot_ = 0;
};

}  // namespace dsc::cpu
