// The shape and attributes of a SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss node (or its
// gradient), read once at Init by the CPU kernels (kernels/cpu/loss.cc) and their CUDA twins
// (kernels/cuda/loss.cu); the per-element math is kernels/common/loss_math.h.
//   ASSIGN_OR_RETURN(loss::LossShape s, loss::ReadLoss(node, x, labels, weights, loss_out));
#pragma once

#include <string>
#include <vector>

#include "kernels/common/loss_math.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::loss {

// X:(N,C,d1..dk) viewed as (N,C,D). Plain data: the CUDA kernels take it by value.
struct LossShape {
  int64_t n = 0, c = 0, d = 1;
  Reduction reduction = Reduction::kMean;
  bool has_ignore = false;
  int64_t ignore_index = 0;
};

// x: the (N,C,...) input, labels: (N,...), loss: the per-element or scalar loss (dLoss for grads).
inline StatusOr<LossShape> ReadLoss(const Node& node, const Value* x, const Value* labels, const Value* weights,
                                    const Value* loss) {
  ASSIGN_OR_RETURN(std::vector<int64_t> xd, nn::StaticDims(x, "scores"));
  ASSIGN_OR_RETURN(std::vector<int64_t> ld, nn::StaticDims(labels, "labels"));
  if (xd.size() < 2) return InvalidArgument("scores ", nn::DimsToString(xd), " need rank >= 2 (N,C,...)");
  std::vector<int64_t> expect_l = {xd[0]};
  expect_l.insert(expect_l.end(), xd.begin() + 2, xd.end());
  if (ld != expect_l)
    return InvalidArgument("labels ", nn::DimsToString(ld), " must be ", nn::DimsToString(expect_l), " for scores ",
                           nn::DimsToString(xd));
  if (labels->type.dtype != DType::kInt64 && labels->type.dtype != DType::kInt32)
    return InvalidArgument("labels must be int64 or int32");
  LossShape s;
  s.n = xd[0], s.c = xd[1], s.d = nn::Product(xd, 2, xd.size());
  if (weights) {
    ASSIGN_OR_RETURN(std::vector<int64_t> wd, nn::StaticDims(weights, "weights"));
    if (wd != std::vector<int64_t>{s.c})
      return InvalidArgument("weights ", nn::DimsToString(wd), " must be [", s.c, "]");
  }
  const std::string r = node.GetString("reduction", "mean");
  if (r == "none")
    s.reduction = Reduction::kNone;
  else if (r == "sum")
    s.reduction = Reduction::kSum;
  else if (r == "mean")
    s.reduction = Reduction::kMean;
  else
    return InvalidArgument("unknown reduction '", r, "'");
  ASSIGN_OR_RETURN(std::vector<int64_t> out, nn::StaticDims(loss, "loss"));
  if (s.reduction == Reduction::kNone ? out != ld : nn::Product(out) != 1)
    return InvalidArgument("loss ", nn::DimsToString(out), " does not fit reduction '", r, "' and labels ",
                           nn::DimsToString(ld));
  s.has_ignore = node.HasAttr("ignore_index");
  s.ignore_index = node.GetInt("ignore_index", 0);
  return s;
}

}  // namespace dsc::loss
