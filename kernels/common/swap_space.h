// Where swapped state tensors live (ir/swap_ops.h): the interface the swap kernels call, kept free
// of any I/O library so the kernels link without one; runtime/nvme_swap.h implements it with
// io_uring over one file per rank.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "ir/status.h"
#include "runtime/communicator.h"  // CommHandle: a transfer in flight waits and progresses like a collective

namespace dsc {

class SwapSpace {
 public:
  virtual ~SwapSpace() = default;
  // Starts copying the first `bytes` of state `name` into `dst` / from `src` into them; `bytes` is
  // at most the state's size. The buffer stays untouched until the handle's Wait() returns (a
  // handle destroyed first waits).
  virtual StatusOr<std::unique_ptr<CommHandle>> StartRead(const std::string& name, void* dst, size_t bytes) = 0;
  virtual StatusOr<std::unique_ptr<CommHandle>> StartWrite(const std::string& name, const void* src, size_t bytes) = 0;
};

}  // namespace dsc
