// Where a bucketed collective's members go in its buffer B and back (ir/dsc_ops.h, "Bucketed,
// asynchronous collectives"; ops::BucketLayout), as lists of element ranges that the CPU kernels
// copy with memcpy and the CUDA ones with cudaMemcpyAsync: the index math exists once, and the CPU
// tests check the layout the GPU uses.
//
//   ops::BucketLayout l(numels, world);
//   MemberCopies in = PackCopies(l, "ReduceScatter", rank, i);  // member i's tensor -> B
//   for (const Segment& s : in.copies) memcpy(B + s.dst, X_i + s.src, s.len);  // (in elements)
//   for (const ZeroRange& z : in.zeros) memset(B + z.at, 0, z.len);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"

namespace dsc::coll {

struct Segment {
  int64_t dst = 0, src = 0, len = 0;  // elements
};
struct ZeroRange {
  int64_t at = 0, len = 0;  // elements of the destination
};
// One member's ranges between its tensor and B.
struct MemberCopies {
  std::vector<Segment> copies;
  std::vector<ZeroRange> zeros;
};

// Chunk r of an n-element tensor in chunks of c: its first element and length (short or empty
// past the end: that is the zero padding).
inline int64_t ChunkPart(int64_t n, int64_t c, int64_t r, int64_t* len) {
  const int64_t begin = n < r * c ? n : r * c;
  const int64_t end = n < (r + 1) * c ? n : (r + 1) * c;
  *len = end - begin;
  return begin;
}

// A Start: member i's tensor (src) into B (dst), with B's padding zeroed. `kind` is the Start's
// op without "Start". The tensor is X_i (n_i elements) except for AllGather, where it is this
// rank's chunk (c_i elements, padding included).
inline MemberCopies PackCopies(const ops::BucketLayout& l, const std::string& kind, int64_t rank, size_t i) {
  const ops::BucketLayout::Member& m = l.members[i];
  MemberCopies out;
  auto chunk = [&](int64_t r) {  // chunk r of X_i to block r, padded
    int64_t len;
    const int64_t begin = ChunkPart(m.numel, m.chunk, r, &len);
    const int64_t at = r * l.block + m.block_offset;
    if (len > 0) out.copies.push_back({at, begin, len});
    if (len < m.chunk) out.zeros.push_back({at + len, m.chunk - len});
  };
  if (kind == ops::kAllReduce) {
    if (m.numel > 0) out.copies.push_back({m.flat_offset, 0, m.numel});
  } else if (kind == ops::kReduceScatter) {
    for (int64_t r = 0; r < l.world; ++r) chunk(r);
  } else if (kind == ops::kAllGather) {
    if (m.chunk > 0) out.copies.push_back({rank * l.block + m.block_offset, 0, m.chunk});
  } else {  // AllGatherInPlace
    chunk(rank);
  }
  return out;
}

// A Wait: B (src) into member i's output Y_i (dst; for AllGatherInPlace the state tensor P_i).
inline MemberCopies UnpackCopies(const ops::BucketLayout& l, const std::string& kind, int64_t rank, size_t i) {
  const ops::BucketLayout::Member& m = l.members[i];
  MemberCopies out;
  if (kind == ops::kAllReduce) {
    if (m.numel > 0) out.copies.push_back({0, m.flat_offset, m.numel});
  } else if (kind == ops::kReduceScatter) {
    if (m.chunk > 0) out.copies.push_back({0, rank * l.block + m.block_offset, m.chunk});
  } else {  // the gathers: the first n_i elements of the chunks, in rank order
    for (int64_t r = 0; r < l.world; ++r) {
      int64_t len;
      const int64_t begin = ChunkPart(m.numel, m.chunk, r, &len);
      if (len > 0) out.copies.push_back({begin, r * l.block + m.block_offset, len});
    }
  }
  return out;
}


}  // namespace dsc::coll
