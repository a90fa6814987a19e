// A Communicator that only knows its rank and size, for the shard mode of the in-place training
// ops (Assign, AdamStep, SGDStep, OptimStep), which ask the communicator for nothing else.
//   GroupPosition group(1, 3);  RunNodeOnCpu(node, inputs, 0, 1, &group);
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "runtime/communicator.h"

namespace dsc::testing {

class GroupPosition : public Communicator {
 public:
  GroupPosition(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  StatusOr<std::unique_ptr<CommHandle>> AllReduce(void*, int64_t, DType, ReduceOp) override { return Unused(); }
  StatusOr<std::unique_ptr<CommHandle>> ReduceScatter(const void*, void*, int64_t, DType, ReduceOp) override {
    return Unused();
  }
  StatusOr<std::unique_ptr<CommHandle>> AllGather(const void*, void*, int64_t, DType) override { return Unused(); }
  StatusOr<std::unique_ptr<CommHandle>> Broadcast(void*, int64_t, DType, int) override { return Unused(); }
  StatusOr<std::unique_ptr<CommHandle>> AllToAll(const void*, void*, int64_t, DType) override { return Unused(); }
  Status Barrier() override { return Status::OK(); }
  std::map<std::string, int64_t> bytes_sent() const override { return {}; }
  std::map<std::string, int64_t> calls() const override { return {}; }
  [[noreturn]] void Abort(const std::string& message, int) override {
    ADD_FAILURE() << message;
    std::abort();
  }

 private:
  static Status Unused() { return Internal("GroupPosition has no collectives"); }
  int rank_, size_;
};

}  // namespace dsc::testing
