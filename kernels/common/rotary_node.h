// What a RotaryEmbedding kernel reads at Init, shared by the CPU kernel (kernels/cpu/rotary.cc) and
// its CUDA twin (kernels/cuda/rotary.cu), which hold RotaryNode as a base. Each reads the dims
// itself (their missing-shape messages differ) and adds its own dtype checks between the steps:
//   RETURN_IF_ERROR(CheckCaches(cache, sin_cache));
//   RETURN_IF_ERROR(ReadLayout(node, x, cache));
//   RETURN_IF_ERROR(CheckPositions(cache, has_pos_ ? &pos : nullptr));
#pragma once

#include <vector>

#include "kernels/cpu/nn_util.h"

namespace dsc {

// X (B, H, S, D) or (B, S, H*D) with num_heads; half_ rotated pairs per head; the caches' rows
// are position_ids' values (max_pos_ of them) or, without position_ids, (b, s).
struct RotaryNode {
  static Status CheckCaches(const std::vector<int64_t>& cache, const std::vector<int64_t>& sin_cache) {
    if (cache != sin_cache)
      return InvalidArgument("cos_cache ", nn::DimsToString(cache), " and sin_cache ", nn::DimsToString(sin_cache),
                             " differ");
    return Status::OK();
  }

  // X's layout, rotary_embedding_dim and the caches' last dim.
  Status ReadLayout(const Node& node, const std::vector<int64_t>& x, const std::vector<int64_t>& cache) {
    const int64_t num_heads = node.GetInt("num_heads", 0);
    interleaved_ = node.GetInt("interleaved", 0) != 0;
    if (x.size() == 4) {
      b_ = x[0], h_ = x[1], s_ = x[2], d_ = x[3];
      // (b, s, h) -> offset of the head's features in (B, H, S, D)
      sb_ = h_ * s_ * d_, sh_ = s_ * d_, ss_ = d_;
    } else if (x.size() == 3) {
      if (num_heads <= 0 || x[2] % num_heads != 0)
        return InvalidArgument("3-D X ", nn::DimsToString(x), " needs num_heads dividing its last dim, got ",
                               num_heads);
      b_ = x[0], s_ = x[1], h_ = num_heads, d_ = x[2] / num_heads;
      sb_ = s_ * h_ * d_, ss_ = h_ * d_, sh_ = d_;
    } else {
      return InvalidArgument("X ", nn::DimsToString(x), " must be 3-D or 4-D");
    }
    int64_t rot = node.GetInt("rotary_embedding_dim", 0);
    if (rot == 0) rot = d_;
    if (rot < 0 || rot > d_ || rot % 2 != 0)
      return InvalidArgument("rotary_embedding_dim ", rot, " must be even and at most the head size ", d_);
    half_ = rot / 2;
    has_pos_ = node.input(3) != nullptr;
    if (cache.empty() || cache.back() != half_)
      return InvalidArgument("the caches' last dim ", nn::DimsToString(cache), " must be rotary_embedding_dim/2 = ",
                             half_);
    return Status::OK();
  }

  // The caches against position_ids' dims (`pos`), or against (B, S) without position_ids (null).
  Status CheckPositions(const std::vector<int64_t>& cache, const std::vector<int64_t>* pos) {
    if (pos) {
      if (cache.size() != 2 || *pos != std::vector<int64_t>{b_, s_})
        return InvalidArgument("with position_ids ", nn::DimsToString(*pos), " the caches must be (max_position, ",
                               half_, ") and position_ids (", b_, ",", s_, "); caches are ", nn::DimsToString(cache));
      max_pos_ = cache[0];
    } else if (cache != std::vector<int64_t>{b_, s_, half_}) {
      return InvalidArgument("without position_ids the caches must be (", b_, ",", s_, ",", half_, "), got ",
                             nn::DimsToString(cache));
    }
    return Status::OK();
  }

  bool interleaved_ = false, has_pos_ = false;
  int64_t b_ = 1, h_ = 1, s_ = 1, d_ = 1, half_ = 0, max_pos_ = 0;
  int64_t sb_ = 0, sh_ = 0, ss_ = 0;  // element strides of batch, head and position in X
};

}  // namespace dsc
