// The window index math of kernels/common/conv_math.h and pool_math.h that only the CUDA kernels call
// (im2col per element, col2im and pooling gradients as gathers) checked on the CPU against plain
// loops over 3-D windows, so a wrong index shows up without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/common/conv_math.h"
#include "kernels/common/pool_math.h"
#include "kernels/common/window_node.h"

namespace dsc {
namespace {

// 3-D windows with strides, dilations and asymmetric pads that differ per axis (out from
// nn::WindowOutSize); the leading axes of size 1 are how 1-D and 2-D windows look.
std::vector<nn::Window> Windows() {
  std::vector<nn::Window> out;
  for (int64_t k : {1, 2, 3})
    for (int64_t s : {1, 2, 3})
      for (int64_t d : {1, 2})
        for (int64_t pb : {0, 1, 2})
          for (int64_t pe : {0, 1}) {
            nn::Window w;
            w.rank = 3;
            const int64_t ks[3] = {k == 3 ? 1 : k + 1, k, k + 1}, ss[3] = {s, s, s == 1 ? 2 : 1};
            const int64_t ds[3] = {3 - d, d, 3 - d}, pbs[3] = {pe, pb, pe}, pes[3] = {pb, pe, pb}, in[3] = {4, 5, 7};
            for (int a = 0; a < 3; ++a) {
              w.k[a] = ks[a], w.s[a] = ss[a], w.d[a] = ds[a], w.pb[a] = pbs[a], w.pe[a] = pes[a], w.in[a] = in[a];
              w.out[a] = nn::WindowOutSize(w.in[a], w.k[a], w.s[a], w.d[a], w.pb[a], w.pe[a], false);
            }
            if (w.OutSize() > 0) out.push_back(w);
          }
  return out;
}

TEST(ConvMath, Im2ColSourceMatchesTheCpuLoop) {
  const int64_t cg = 2;
  for (const nn::Window& w : Windows()) {
    for (int64_t row = 0; row < cg * w.Taps(); ++row) {
      const int64_t c = row / w.Taps(), ka = row / (w.k[1] * w.k[2]) % w.k[0], kb = row / w.k[2] % w.k[1],
                    kc = row % w.k[2];
      for (int64_t oz = 0; oz < w.out[0]; ++oz)
        for (int64_t oy = 0; oy < w.out[1]; ++oy)
          for (int64_t ox = 0; ox < w.out[2]; ++ox) {
            const int64_t iz = oz * w.s[0] - w.pb[0] + ka * w.d[0], iy = oy * w.s[1] - w.pb[1] + kb * w.d[1],
                          ix = ox * w.s[2] - w.pb[2] + kc * w.d[2];
            const bool in = iz >= 0 && iz < w.in[0] && iy >= 0 && iy < w.in[1] && ix >= 0 && ix < w.in[2];
            ASSERT_EQ(conv::Im2ColSource(w, row, (oz * w.out[1] + oy) * w.out[2] + ox),
                      in ? ((c * w.in[0] + iz) * w.in[1] + iy) * w.in[2] + ix : -1);
          }
    }
  }
}

TEST(ConvMath, OutputPosInvertsInputPos) {
  for (const nn::Window& w : Windows())
    for (int a = 0; a < nn::kMaxSpatial; ++a)
      for (int64_t t = 0; t < w.k[a]; ++t)
        for (int64_t i = 0; i < w.in[a]; ++i) {
          int64_t expect = -1;
          for (int64_t o = 0; o < w.out[a]; ++o)
            if (conv::InputPos(o, w.s[a], w.pb[a], t, w.d[a]) == i) expect = o;
          ASSERT_EQ(conv::OutputPos(i, w.s[a], w.pb[a], t, w.d[a], w.out[a]), expect);
        }
}

// Divisor counts the taps in range without walking them: against the walk, for both extents.
TEST(PoolMath, DivisorCountsTheTapsInRange) {
  for (const nn::Window& w : Windows())
    for (bool include_pad : {false, true})
      pool::ForEachWindow(w, [&](const int64_t* op, int64_t o) {
        int64_t want = 1;
        for (int a = 0; a < nn::kMaxSpatial; ++a) {
          const int64_t lo = include_pad ? -w.pb[a] : 0, hi = include_pad ? w.in[a] + w.pe[a] : w.in[a];
          int64_t n = 0;
          for (int64_t t = 0; t < w.k[a]; ++t) n += w.Pos(a, op[a], t) >= lo && w.Pos(a, op[a], t) < hi;
          want *= n;
        }
        ASSERT_EQ(pool::Divisor(w, include_pad, op), want) << o;
      });
  // Windows reaching past the padded extent (ceil_mode's last window) and starting before it.
  for (int64_t start : {-5, -3, -1, 0, 2, 6, 9})
    for (int64_t d : {1, 2, 3})
      for (int64_t k : {1, 2, 4}) {
        int64_t want = 0;
        for (int64_t t = 0; t < k; ++t) want += start + t * d >= -1 && start + t * d < 7;
        ASSERT_EQ(pool::TapsWithin(start, d, k, -1, 7), want) << start << " " << d << " " << k;
      }
}

// The pooling gradients' gather (one input element visits its windows) sees exactly the windows the
// forward's scatter walk reaches, in the same (increasing) order.
TEST(PoolMath, ForEachWindowOverInvertsForEachTap) {
  for (const nn::Window& w : Windows()) {
    std::vector<std::vector<int64_t>> scattered(w.InSize());
    int64_t count = 0;
    pool::ForEachWindow(w, [&](const int64_t* op, int64_t o) {
      int64_t flat[3];
      nn::Unflatten(w.out, o, flat);
      ASSERT_TRUE(op[0] == flat[0] && op[1] == flat[1] && op[2] == flat[2]) << o;
      ASSERT_EQ(o, count++);
      pool::ForEachTap(w, op, [&](int64_t off) { scattered[off].push_back(o); });
    });
    ASSERT_EQ(count, w.OutSize());
    for (int64_t off = 0; off < w.InSize(); ++off) {
      std::vector<int64_t> gathered;
      pool::ForEachWindowOver(w, off, [&](const int64_t* op, int64_t o) {
        int64_t flat[3];
        nn::Unflatten(w.out, o, flat);
        EXPECT_TRUE(op[0] == flat[0] && op[1] == flat[1] && op[2] == flat[2]) << o;
        gathered.push_back(o);
      });
      ASSERT_EQ(gathered, scattered[off]);
    }
  }
}

}  // namespace
}  // namespace dsc
