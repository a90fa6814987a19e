// The collectives one program has in flight between a *Start node and its CollectiveWait (and the
// swaps of NVMe-offloaded states, ir/swap_ops.h), and the
// live gathered parameter elements of stage 3 (ir/dsc_ops.h, "Bucketed, asynchronous
// collectives"). The executor owns one per program and hands it to kernels as
// KernelContext::comm_state; it calls Progress() between nodes and CheckIdle() after the last.
//
//   RETURN_IF_ERROR(ctx.comm_state->Add(b.ptr, std::move(handle), name_));      // a Start
//   ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h, ctx.comm_state->Take(b.ptr, name_));  // its Wait
//   if (h) RETURN_IF_ERROR(h->Wait());
//
// Collectives are keyed by their buffer B's address: B stays alive and untouched from its Start to
// its Wait (the memory plan keeps it live over that span), so no two in flight share one. A null
// handle is a collective that completed when issued (one rank: the Start did the work itself); it
// is still recorded so that the Wait finds its Start.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "ir/status.h"
#include "runtime/communicator.h"

namespace dsc {

class SwapSpace;  // kernels/common/swap_space.h

class CommState {
 public:
  // Records the collective `started_by` (a node's description) issued on buffer b.
  Status Add(const void* b, std::unique_ptr<CommHandle> handle, std::string started_by) {
    auto it = in_flight_.find(b);
    if (it != in_flight_.end())
      return Internal(started_by, ": its buffer already carries the collective of ", it->second.started_by,
                      ", which was not waited for");
    in_flight_.emplace(b, InFlight{std::move(handle), std::move(started_by)});
    return Status::OK();
  }

  // Removes and returns the collective in flight on b (null when it completed at issue); an error
  // naming `waiter` when there is none.
  StatusOr<std::unique_ptr<CommHandle>> Take(const void* b, const std::string& waiter) {
    auto it = in_flight_.find(b);
    if (it == in_flight_.end())
      return FailedPrecondition(waiter, ": no collective is in flight on its buffer (its Start did not run, or ",
                                "another Wait took it)");
    std::unique_ptr<CommHandle> h = std::move(it->second.handle);
    in_flight_.erase(it);
    return StatusOr<std::unique_ptr<CommHandle>>(std::move(h));  // nvcc does not move on return here
  }

  // Lets every collective in flight advance (MPI progresses non-blocking collectives only inside
  // MPI calls); an error names the Start node.
  Status Progress() {
    for (auto& [b, f] : in_flight_)
      if (f.handle) {
        Status s = f.handle->Progress();
        if (!s.ok()) return s.WithContext(f.started_by);
      }
    return Status::OK();
  }

  // An error listing the Start nodes whose collectives were never waited for.
  Status CheckIdle() const {
    if (in_flight_.empty()) return Status::OK();
    std::string names;
    for (const auto& [b, f] : in_flight_) names += StrCat(names.empty() ? "" : ", ", f.started_by);
    return FailedPrecondition("collectives started and never waited for: ", names);
  }

  // Drops every collective in flight (a failed run): each handle waits for its collective as it is
  // destroyed (communicator.h), so the buffers may be reused afterwards.
  void Clear() { in_flight_.clear(); }

  bool empty() const { return in_flight_.empty(); }

  // The rank's swap space of NVMe-offloaded states (ir/swap_ops.h): SwapIn/SwapOut add their
  // transfers here like collectives; null when the plan swaps nothing.
  void set_swap_space(SwapSpace* s) { swap_space_ = s; }
  SwapSpace* swap_space() const { return swap_space_; }

  // Gathered stage-3 parameter elements: an AllGatherStart adds its members' n_i when it issues,
  // a Release subtracts its inputs' elements.
  void AddGathered(int64_t n) {
    gathered_live_ += n;
    gathered_peak_ = std::max(gathered_peak_, gathered_live_);
  }
  void ReleaseGathered(int64_t n) { gathered_live_ -= n; }
  int64_t gathered_live() const { return gathered_live_; }
  // The most gathered elements alive at once since the last ResetPeak().
  int64_t gathered_peak() const { return gathered_peak_; }
  void ResetPeak() { gathered_peak_ = gathered_live_; }

 private:
  struct InFlight {
    std::unique_ptr<CommHandle> handle;
    std::string started_by;
  };
  std::map<const void*, InFlight> in_flight_;
  int64_t gathered_live_ = 0;
  int64_t gathered_peak_ = 0;
  SwapSpace* swap_space_ = nullptr;
};

}  // namespace dsc
