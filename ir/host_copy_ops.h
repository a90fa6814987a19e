// The ops that keep a value in host memory between two uses (activation_checkpointing.cpu_checkpointing,
// made by passes/rematerialize.cc), run by kernels/cpu/host_copy.cc and kernels/cuda/host_copy.cu.
//
//   X_host = ToHost(X)        copies X to X_host, which the memory plan places in the program's
//                             host arena (MemoryPlan::host_slots): host memory the device copies to
//                             and from fastest (Device::AllocateHost, page-locked on CUDA)
//   X' = FromHost(X_host)     copies it back into a device value (the device arena)
// ai.dscompile domain, any dtype, one input and one output of the same type; the bytes move as
// they are, so X' holds exactly X's bits. Only FromHost reads a ToHost output (memory-plan checks
// it): no other kernel may be handed a host pointer. On the CPU device both arenas are host
// memory and the copies are memcpy; on CUDA, copies on the compute stream (stream order keeps a
// host slot from being reused before the copy out of it finished).
#pragma once

#include "ir/graph.h"

namespace dsc::ops {

inline constexpr const char* kToHost = "ToHost";
inline constexpr const char* kFromHost = "FromHost";

inline bool IsToHost(const Node& n) { return n.domain() == kDscDomain && n.op_type() == kToHost; }
inline bool IsFromHost(const Node& n) { return n.domain() == kDscDomain && n.op_type() == kFromHost; }

}  // namespace dsc::ops
