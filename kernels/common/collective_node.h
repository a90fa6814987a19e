// What a ZeRO collective kernel reads from its node and how it meets the communicator (host code,
// shared by kernels/cpu/collectives.cc and its CUDA twin kernels/cuda/collectives.cu).
//   class AllReduceKernel : public OpKernel, protected coll::CollectiveNode {
//     Status Init(const Node& n) { return CollectiveNode::Init(n, /*reduction=*/true); } ... };
#pragma once

#include <memory>
#include <string>

#include "ir/dsc_ops.h"
#include "kernels/common/zoadam_math.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"

namespace dsc::coll {

// The node's description, its dtype, the compiled world size and the reduction.
struct CollectiveNode {
  Status Init(const Node& n, bool reduction) {
    name_ = n.Describe();
    if (n.num_inputs() < 1 || !n.input(0)) return InvalidArgument(name_, ": input 0 is required");
    dtype_ = n.input(0)->type.dtype;
    element_size_ = DTypeSize(dtype_);
    for (const Value* v : n.outputs())
      if (v && v->type.dtype != dtype_)
        return InvalidArgument(name_, ": output '", v->name(), "' is ", DTypeName(v->type.dtype), ", input is ",
                               DTypeName(dtype_));
    world_attr_ = n.GetInt("world", 1);
    until_step_ = n.GetInt("until_step", 0);
    var_update_scaler_ = n.GetInt("var_update_scaler", 0);
    step_offset_ = n.GetInt("step_offset", 0);
    when_retired_ = n.GetInt("when_retired", 0) != 0;
    if (world_attr_ < 1) return InvalidArgument(name_, ": attribute world must be >= 1, got ", world_attr_);
    if (reduction) {
      const std::string op = n.GetString("op", "sum");
      if (op == "sum") op_ = ReduceOp::kSum;
      else if (op == "avg") op_ = ReduceOp::kAvg;
      else return InvalidArgument(name_, ": attribute op must be \"avg\" or \"sum\", got \"", op, "\"");
    }
    return Status::OK();
  }

  // The communicator's world and rank, checked against the compiled world size.
  Status Group(const KernelContext& ctx, int64_t* world, int64_t* rank) const {
    return RankAndWorld(ctx, world_attr_, name_, rank, world);
  }

  // An AllReduce past its until_step (1-bit optimizers after the freeze), or with 0/1 Adam's
  // var_update_scaler on a step that is no variance step: Y = X, nothing sent. With when_retired
  // the other way round: it runs on exactly those steps (the overflow verdict's agreement).
  bool Retired(const KernelContext& ctx) const {
    if (until_step_ <= 0) return false;
    const int64_t call = ctx.optimizer_step + step_offset_;  // the 1-bit optimizer's call
    const bool own = call > until_step_ ||
                     (var_update_scaler_ > 0 &&
                      !zoadam::ZoadamSchedule{until_step_, var_update_scaler_, 1, 1}.VarianceStep(call));
    return own != when_retired_;
  }

  // Waits for a collective; errors name the node.
  Status Finish(StatusOr<std::unique_ptr<CommHandle>> h) const {
    if (!h.ok()) return h.status().WithContext(name_);
    Status s = (*h)->Wait();
    if (!s.ok()) return s.WithContext(name_);
    return Status::OK();
  }

  // AllReduce: Y has X's n elements.
  Status CheckSameCount(int64_t y, int64_t n) const {
    if (y != n) return InvalidArgument(name_, ": Y has ", y, " elements, X has ", n);
    return Status::OK();
  }

  // ReduceScatter's Y and AllGather's X (`what`): one chunk of c = ceil(n / world) elements.
  Status CheckChunk(const char* what, int64_t count, int64_t n, int64_t world) const {
    const int64_t c = ops::ChunkSize(n, world);
    if (count != c)
      return InvalidArgument(name_, ": ", what, " has ", count, " elements, expected ceil(", n, " / ", world,
                             ") = ", c);
    return Status::OK();
  }

  // Rank r's part of an n-element tensor in chunks of c: [min(n, r*c), min(n, (r+1)*c)), as its
  // begin (returned) and *len.
  static int64_t OwnChunk(int64_t n, int64_t c, int64_t rank, int64_t* len) {
    const int64_t begin = n < rank * c ? n : rank * c;
    const int64_t end = n < (rank + 1) * c ? n : (rank + 1) * c;
    *len = end - begin;
    return begin;
  }

  // Element i of a buffer of this node's dtype.
  char* At(void* p, int64_t i) const { return static_cast<char*>(p) + static_cast<size_t>(i) * element_size_; }

  std::string name_;
  int64_t world_attr_ = 1;
  int64_t until_step_ = 0;
  int64_t step_offset_ = 0;  // optimizer calls before training (a 1-bit optimizer under fp16/bf16)
  bool when_retired_ = false;
  int64_t var_update_scaler_ = 0;
  ReduceOp op_ = ReduceOp::kSum;
  DType dtype_ = DType::kFloat32;
  size_t element_size_ = 4;
};

}  // namespace dsc::coll
