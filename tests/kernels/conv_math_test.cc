// The conv index math of kernels/common/conv_math.h that only the CUDA kernels call (im2col per
// element, col2im as a gather) checked on the CPU against the loops kernels/cpu/conv.cc runs, so a
// wrong index shows up without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/common/conv_math.h"
#include "kernels/cpu/nn_util.h"

namespace dsc {
namespace {

// Windows with strides, dilations and asymmetric pads (oh/ow from nn::WindowOutSize).
std::vector<nn::Window2D> Windows() {
  std::vector<nn::Window2D> out;
  for (int64_t k : {1, 2, 3})
    for (int64_t s : {1, 2, 3})
      for (int64_t d : {1, 2})
        for (int64_t pb : {0, 1, 2})
          for (int64_t pe : {0, 1}) {
            nn::Window2D w;
            w.kh = k, w.kw = k + 1, w.sh = s, w.sw = s == 1 ? 2 : 1, w.dh = d, w.dw = 3 - d;
            w.pt = pb, w.pl = pe, w.pb = pe, w.pr = pb, w.ih = 5, w.iw = 7;
            w.oh = nn::WindowOutSize(w.ih, w.kh, w.sh, w.dh, w.pt, w.pb, false);
            w.ow = nn::WindowOutSize(w.iw, w.kw, w.sw, w.dw, w.pl, w.pr, false);
            if (w.oh > 0 && w.ow > 0) out.push_back(w);
          }
  return out;
}

TEST(ConvMath, Im2ColSourceMatchesTheCpuLoop) {
  const int64_t cg = 2;
  for (const nn::Window2D& w : Windows()) {
    for (int64_t row = 0; row < cg * w.kh * w.kw; ++row) {
      const int64_t c = row / (w.kh * w.kw), ki = row / w.kw % w.kh, kj = row % w.kw;
      for (int64_t oy = 0; oy < w.oh; ++oy)
        for (int64_t ox = 0; ox < w.ow; ++ox) {
          const int64_t iy = oy * w.sh - w.pt + ki * w.dh, ix = ox * w.sw - w.pl + kj * w.dw;
          const bool in = iy >= 0 && iy < w.ih && ix >= 0 && ix < w.iw;
          ASSERT_EQ(conv::Im2ColSource(w, row, oy * w.ow + ox), in ? (c * w.ih + iy) * w.iw + ix : -1);
        }
    }
  }
}

TEST(ConvMath, OutputPosInvertsInputPos) {
  for (const nn::Window2D& w : Windows())
    for (int64_t t = 0; t < w.kh; ++t)
      for (int64_t i = 0; i < w.ih; ++i) {
        int64_t expect = -1;
        for (int64_t o = 0; o < w.oh; ++o)
          if (conv::InputPos(o, w.sh, w.pt, t, w.dh) == i) expect = o;
        ASSERT_EQ(conv::OutputPos(i, w.sh, w.pt, t, w.dh, w.oh), expect);
      }
}

}  // namespace
}  // namespace dsc
