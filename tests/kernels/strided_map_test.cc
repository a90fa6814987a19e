// kernels/common/strided_map.h, the strided copy the CUDA movement kernels run one thread per
// element: maps for a transpose, a broadcast, a tile and a reversed slice, walked with
// StridedOffsets in 64 and 32 bits, against plain loops over the same shapes.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/common/strided_map.h"

namespace dsc {
namespace {

std::vector<int64_t> Strides(const std::vector<int64_t>& d) {
  std::vector<int64_t> s(d.size(), 1);
  for (size_t i = d.size(); i-- > 1;) s[i - 1] = s[i] * d[i];
  return s;
}

// Y[i] for every element i, with X[j] = j: the X offset each element of Y reads.
std::vector<int64_t> Walk(const StridedMap& m) {
  std::vector<int64_t> y(static_cast<size_t>(m.y_numel), -1);
  for (int64_t i = 0; i < m.numel; ++i) {
    int64_t xo, yo;
    StridedOffsets<int64_t>(m, i, &xo, &yo);
    int32_t xo32, yo32;
    StridedOffsets<int32_t>(m, static_cast<int32_t>(i), &xo32, &yo32);
    EXPECT_EQ(xo, xo32);
    EXPECT_EQ(yo, yo32);
    EXPECT_GE(xo, 0);
    EXPECT_LT(xo, m.x_numel);
    y[static_cast<size_t>(yo)] = xo;
  }
  return y;
}

TEST(StridedMap, TransposeMergesAndPermutes) {
  // X (2,3,1,4) -> Y = X.transpose(0, 3, 1, 2): Y (2,4,3,1); the size-1 dim is dropped.
  const std::vector<int64_t> x = {2, 3, 1, 4}, xs = Strides(x), y = {2, 4, 3, 1};
  StatusOr<StridedMap> m = MakeStridedMap(y, {xs[0], xs[3], xs[1], xs[2]}, Strides(y), 24, 24);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rank, 3);
  std::vector<int64_t> want;
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t d = 0; d < 4; ++d)
      for (int64_t b = 0; b < 3; ++b) want.push_back(a * 12 + b * 4 + d);
  EXPECT_EQ(Walk(*m), want);
}

TEST(StridedMap, BroadcastAndContiguousDimsMerge) {
  // X (3,1) broadcast to Y (2,3,4): stride 0 on the broadcast dims; (2) and the merged rest.
  const std::vector<int64_t> y = {2, 3, 4};
  StatusOr<StridedMap> m = MakeStridedMap(y, {0, 1, 0}, Strides(y), 3, 24);
  ASSERT_TRUE(m.ok());
  std::vector<int64_t> want;
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 4; ++c) want.push_back(b);
  EXPECT_EQ(Walk(*m), want);
  // A plain copy collapses to one dim.
  StatusOr<StridedMap> flat = MakeStridedMap(y, Strides(y), Strides(y), 24, 24);
  ASSERT_TRUE(flat.ok());
  EXPECT_EQ(flat->rank, 1);
}

TEST(StridedMap, TileAsRepeatAndExtent) {
  // X (2,3) tiled (2,2) -> Y (4,6), Y viewed as (rep0, 2, rep1, 3).
  StatusOr<StridedMap> m = MakeStridedMap({2, 2, 2, 3}, {0, 3, 0, 1}, {12, 6, 3, 1}, 6, 24);
  ASSERT_TRUE(m.ok());
  std::vector<int64_t> want;
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 6; ++c) want.push_back(r % 2 * 3 + c % 3);
  EXPECT_EQ(Walk(*m), want);
}

TEST(StridedMap, NegativeStepsFromABase) {
  // Y = X[::-1, 1::2] of X (3,5): base at row 2, column 1; row stride -5, column stride 2.
  StatusOr<StridedMap> m = MakeStridedMap({3, 2}, {-5, 2}, {2, 1}, 15, 6, /*x_base=*/11, /*y_base=*/0);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Walk(*m), (std::vector<int64_t>{11, 13, 6, 8, 1, 3}));
}

TEST(StridedMap, RefusesTooManyDims) {
  std::vector<int64_t> dims(kMaxStridedDims + 1, 2), xs(dims.size()), ys = Strides(dims);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = ys[xs.size() - 1 - i];  // reversed: nothing merges
  StatusOr<StridedMap> m = MakeStridedMap(dims, xs, ys, 1 << 13, 1 << 13);
  EXPECT_FALSE(m.ok());
}

}  // namespace
}  // namespace dsc
