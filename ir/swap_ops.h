// The ops that move state tensors between NVMe and memory (offload_optimizer.device "nvme": the
// optimizer states and master weights, made by passes/offload_optimizer.cc; offload_param.device
// "nvme": the stage-3 parameter chunks, made by passes/offload_param.cc), run by kernels/cpu/swap.cc
// through kernels/common/swap_space.h.
//
// A swapped state tensor S has no resident buffer and is no graph input: its bytes live in the
// rank's swap file, and a program brings it in for the nodes that read it:
//   X = SwapIn<state = "S">()      issues the read of S into X (X has S's type); asynchronous
//   SwapInWait<state = "S">(X)     no outputs: waits for that read; X now holds S
//   ... the readers read X; an update writes it in place (AdamStep, OptimStep, Assign, ...) ...
//   SwapOut<state = "S">(X)        no outputs: issues the write of X to S's bytes in the file
//   SwapOutWait<state = "S">(X)    no outputs: waits for it; X's bytes may be reused after this
// The write-back is left out when the readers only read X (a parameter chunk's gather): X then
// dies after its last reader. From a SwapIn to its SwapInWait and from a SwapOut to its
// SwapOutWait the transfer is in flight: nothing else touches X, and the executor lets it
// progress after every node (CommState, keyed by X's address like a bucketed collective's
// buffer). X is live from SwapIn to its last use, so the memory plan holds only the tensors of
// the swap window at once.
#pragma once

#include <set>
#include <string>

#include "ir/module.h"

namespace dsc::ops {

inline constexpr const char* kSwapIn = "SwapIn";
inline constexpr const char* kSwapInWait = "SwapInWait";
inline constexpr const char* kSwapOut = "SwapOut";
inline constexpr const char* kSwapOutWait = "SwapOutWait";
// The attribute naming the state tensor a swap op moves.
inline constexpr const char* kSwapStateAttr = "state";
// The memory plan places a SwapIn's output X at a multiple of this many bytes of the arena (whose
// base is page-aligned, runtime/cpu_device.cc), so an O_DIRECT transfer reads into and writes from
// X itself: direct I/O needs buffers aligned to the device's logical block size (512 or 4096).
inline constexpr int64_t kSwapBufferAlignment = 4096;

// The state tensors a module swaps to NVMe: those its SwapIn nodes name.
inline std::set<std::string> SwappedStates(const Module& m) {
  std::set<std::string> out;
  for (const PlanProgram& p : m.programs)
    if (p.graph)
      for (const auto& n : p.graph->nodes())
        if (n->domain() == kDscDomain && n->op_type() == kSwapIn) out.insert(n->GetString(kSwapStateAttr, ""));
  return out;
}

}  // namespace dsc::ops
