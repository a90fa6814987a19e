// 1-D, 2-D and 3-D convolution (ONNX Conv: groups, strides, pads, dilations, auto_pad, optional bias) and ConvGrad,
// and the transposed convolution (ConvTranspose, ConvTransposeGrad) as the adjoint of a Conv: its
// forward is ConvGrad's dX, its gradient Conv's forward (dX) and ConvGrad's dW with X and dY swapped
// (conv::ReadConvTranspose gives that Conv's shape).
//
// Two implementations, chosen per node at Init: oneDNN's convolution primitives (kernels/cpu/onednn.h:
// direct JIT kernels on blocked layouts, reordered from and to our NCHW tensors) whenever oneDNN
// accepts the node, which is every float32 Conv it is handed today; and im2col/col2im
// around OpenBLAS sgemm below, the readable spec and the fallback should oneDNN refuse a node.

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/conv_math.h"
#include "kernels/common/conv_shape.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cpu/onednn.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

// Unfolds one group of one image, x:(Cg,D,H,W), into col:(Cg*kd*kh*kw, OD*OH*OW); padded taps read 0.
void Im2Col(const float* x, int64_t cg, const nn::Window& w, float* col) {
  const int64_t taps = w.Taps(), rows = cg * taps, P = w.OutSize(), plane = w.InSize();
#pragma omp parallel for if (rows * P > nn::kParallelThreshold)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t t[3];
    nn::Unflatten(w.k, row % taps, t);
    const float* xc = x + row / taps * plane;
    float* out = col + row * P;
    for (int64_t oz = 0; oz < w.out[0]; ++oz) {
      const int64_t iz = w.Pos(0, oz, t[0]);
      for (int64_t oy = 0; oy < w.out[1]; ++oy) {
        const int64_t iy = w.Pos(1, oy, t[1]);
        const bool inside = iz >= 0 && iz < w.in[0] && iy >= 0 && iy < w.in[1];
        const float* xr = inside ? xc + (iz * w.in[1] + iy) * w.in[2] : xc;
        float* o = out + (oz * w.out[1] + oy) * w.out[2];
        for (int64_t ox = 0; ox < w.out[2]; ++ox) {
          const int64_t ix = w.Pos(2, ox, t[2]);
          o[ox] = inside && ix >= 0 && ix < w.in[2] ? xr[ix] : 0.0f;
        }
      }
    }
  }
}

// The adjoint of Im2Col: adds col:(Cg*kd*kh*kw, OD*OH*OW) back into x:(Cg,D,H,W); padded taps are
// dropped.
void Col2ImAdd(const float* col, int64_t cg, const nn::Window& w, float* x) {
  const int64_t taps = w.Taps(), P = w.OutSize(), plane = w.InSize();
  // One channel per thread: every row of a channel writes that channel's volume only.
#pragma omp parallel for if (cg * taps * P > nn::kParallelThreshold)
  for (int64_t c = 0; c < cg; ++c) {
    float* xc = x + c * plane;
    for (int64_t tap = 0; tap < taps; ++tap) {
      int64_t t[3];
      nn::Unflatten(w.k, tap, t);
      const float* in = col + (c * taps + tap) * P;
      for (int64_t oz = 0; oz < w.out[0]; ++oz) {
        const int64_t iz = w.Pos(0, oz, t[0]);
        if (iz < 0 || iz >= w.in[0]) continue;
        for (int64_t oy = 0; oy < w.out[1]; ++oy) {
          const int64_t iy = w.Pos(1, oy, t[1]);
          if (iy < 0 || iy >= w.in[1]) continue;
          float* xr = xc + (iz * w.in[1] + iy) * w.in[2];
          const float* ir = in + (oz * w.out[1] + oy) * w.out[2];
          for (int64_t ox = 0; ox < w.out[2]; ++ox) {
            const int64_t ix = w.Pos(2, ox, t[2]);
            if (ix >= 0 && ix < w.in[2]) xr[ix] += ir[ox];
          }
        }
      }
    }
  }
}

// db[c] = sum over images and positions of dy:(N, C, P), in double.
void BiasGrad(const float* dy, int64_t n_images, int64_t channels, int64_t p, float* db) {
#pragma omp parallel for if (n_images * channels * p > nn::kParallelThreshold)
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < n_images; ++n)
      for (int64_t i = 0; i < p; ++i) sum += dy[(n * channels + c) * p + i];
    db[c] = static_cast<float>(sum);
  }
}

using dnnl::memory;
using Tag = memory::format_tag;

bool HasOutput(const Node& node, size_t i) {
  return i < node.num_outputs() && node.output(i) != nullptr && !node.output(i)->name().empty();
}

// A ConvShape in oneDNN's terms: plain (user) layouts of X:(N,C,spatial...), W:(M,Cg,k...) or,
// grouped, (G,Mg,Cg,k...), B:(M), Y:(N,M,spatial'...), and the same shapes with layout `any` for the
// primitive to choose. A 3-D conv is oneDNN's 3-D one; 1-D and 2-D convs are its 2-D one (a 1-D conv
// is the 2-D one of height 1: the same bytes). oneDNN counts dilation from 0.
struct OnednnConv {
  memory::desc x, w, b, y, x_any, w_any, b_any, y_any;
  memory::dims strides, dilates, pad_l, pad_r;

  explicit OnednnConv(const conv::ConvShape& s) {
    const nn::Window& v = s.w;
    const bool three = v.rank == 3;
    const int first = three ? 0 : 1;  // the window axes oneDNN sees
    auto axes = [&](const int64_t* a, int64_t add) {
      memory::dims d;
      for (int i = first; i < nn::kMaxSpatial; ++i) d.push_back(a[i] + add);
      return d;
    };
    memory::dims xd{s.n, s.c}, yd{s.n, s.m}, wd = s.group == 1 ? memory::dims{s.m, s.cg} : memory::dims{s.group, s.mg, s.cg};
    const memory::dims bd{s.m}, in = axes(v.in, 0), out = axes(v.out, 0), k = axes(v.k, 0);
    xd.insert(xd.end(), in.begin(), in.end());
    yd.insert(yd.end(), out.begin(), out.end());
    wd.insert(wd.end(), k.begin(), k.end());
    const auto f32 = memory::data_type::f32;
    const Tag act = three ? Tag::ncdhw : Tag::nchw;
    const Tag wt = s.group == 1 ? (three ? Tag::oidhw : Tag::oihw) : (three ? Tag::goidhw : Tag::goihw);
    x = memory::desc(xd, f32, act), y = memory::desc(yd, f32, act), b = memory::desc(bd, f32, Tag::x);
    w = memory::desc(wd, f32, wt);
    x_any = memory::desc(xd, f32, Tag::any), y_any = memory::desc(yd, f32, Tag::any);
    w_any = memory::desc(wd, f32, Tag::any), b_any = memory::desc(bd, f32, Tag::any);
    strides = axes(v.s, 0), dilates = axes(v.d, -1), pad_l = axes(v.pb, 0), pad_r = axes(v.pe, 0);
  }
  dnnl::convolution_forward::primitive_desc Forward(bool bias) const {
    const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                            x_any, w_any, bias ? b_any : memory::desc(), y_any, strides, dilates,
                                            pad_l, pad_r);
    return {d, cpu::OnednnEngine()};
  }
};

Status OnednnFailed(const dnnl::error& e) { return Internal("oneDNN: ", e.what(), " (status ", int(e.status), ")"); }

// (X, W[, B]) -> Y;  X:(N,C,D,H,W)  W:(M,C/group,kd,kh,kw)  B:(M)  Y:(N,M,OD,OH,OW); 2-D: D = kd = OD = 1,
// 1-D also H = kh = OH = 1
class ConvKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(conv::ConvShape s, conv::ReadConv(node, node.input(0), node.input(1), node.output(0)));
    InitShape(s, node.input(2) != nullptr);
    return Status::OK();
  }
  // For a conv of shape `s`, with or without a bias.
  void InitShape(const conv::ConvShape& s, bool bias) {
    s_ = s;
    bias_ = bias;
    try {
      if (!cpu::OnednnEnabled()) throw dnnl::error(dnnl_unimplemented, "oneDNN turned off by a test");
      const OnednnConv c(s_);
      const auto pd = c.Forward(bias_);
      conv_ = dnnl::convolution_forward(pd);
      x_ = cpu::OnednnLayout(c.x, pd.src_desc(), 0);
      w_ = cpu::OnednnLayout(c.w, pd.weights_desc(), 1);
      y_ = cpu::OnednnLayout(c.y, pd.dst_desc(), 2);
      b_ = memory(c.b, cpu::OnednnEngine(), DNNL_MEMORY_NONE);
      stream_ = dnnl::stream(cpu::OnednnEngine());
      onednn_ = true;
    } catch (const dnnl::error&) {
      onednn_ = false;  // a node oneDNN does not take runs through im2col + sgemm
    }
    col_.resize(onednn_ ? 0 : static_cast<size_t>(s_.k * s_.p));
  }
  Status Compute(KernelContext& ctx) override {
    return Run(ctx.input(0).data<float>(), ctx.input(1).data<float>(),
               ctx.has_input(2) ? ctx.input(2).data<float>() : nullptr, ctx.output(0).data<float>());
  }
  Status Run(const float* x, const float* wt, const float* b, float* y) {
    if (onednn_ && (b != nullptr) == bias_) {
      try {
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_.In(stream_, x)},
                                             {DNNL_ARG_WEIGHTS, w_.In(stream_, wt)},
                                             {DNNL_ARG_DST, y_.Target(y)}};
        if (b) {
          b_.set_data_handle(const_cast<float*>(b));
          args.emplace(DNNL_ARG_BIAS, b_);
        }
        conv_.execute(stream_, args);
        y_.Out(stream_, y);
        stream_.wait();
      } catch (const dnnl::error& e) {
        return OnednnFailed(e);
      }
      return Status::OK();
    }
    const int64_t plane = s_.w.InSize();
    std::vector<float>& col = col_;
    for (int64_t n = 0; n < s_.n; ++n)
      for (int64_t g = 0; g < s_.group; ++g) {
        Im2Col(x + (n * s_.c + g * s_.cg) * plane, s_.cg, s_.w, col.data());
        float* yg = y + (n * s_.m + g * s_.mg) * s_.p;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(s_.mg), int(s_.p), int(s_.k), 1.0f,
                    wt + g * s_.mg * s_.k, int(s_.k), col.data(), int(s_.p), 0.0f, yg, int(s_.p));
        if (b)
          for (int64_t m = 0; m < s_.mg; ++m)
            for (int64_t i = 0; i < s_.p; ++i) yg[m * s_.p + i] += b[g * s_.mg + m];
      }
    return Status::OK();
  }

 private:
  conv::ConvShape s_;
  bool onednn_ = false, bias_ = false;
  dnnl::convolution_forward conv_;
  cpu::OnednnLayout x_, w_, y_;
  memory b_;
  dnnl::stream stream_;
  std::vector<float> col_;  // im2col's buffer, one image and group (fallback only)
};

// (dY, X, W) -> dX, dW, dB (each optional); per image and group:
//   dW_g += dY_g:(Mg,P) @ col(X)^T:(P,K),  dX += col2im(W_g^T:(K,Mg) @ dY_g),  dB = sum over N and P of dY
class ConvGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(conv::ConvShape s, conv::ReadConv(node, node.input(1), node.input(2), node.input(0)));
    InitShape(s, HasOutput(node, 0), HasOutput(node, 1), HasOutput(node, 2));
    return Status::OK();
  }
  // For a conv of shape `s`, building primitives for the gradients asked for.
  void InitShape(const conv::ConvShape& s, bool data, bool weights, bool bias) {
    s_ = s;
    data_ = data, weights_ = weights, bias_ = bias;
    try {
      if (!cpu::OnednnEnabled()) throw dnnl::error(dnnl_unimplemented, "oneDNN turned off by a test");
      InitOnednn();
      onednn_ = true;
    } catch (const dnnl::error&) {
      onednn_ = false;  // a node oneDNN does not take runs through im2col + sgemm
    }
    col_.resize(onednn_ ? 0 : static_cast<size_t>(s_.k * s_.p));
  }
  Status Compute(KernelContext& ctx) override {
    return Run(ctx.input(0).data<float>(), ctx.input(1).data<float>(), ctx.input(2).data<float>(),
               ctx.has_output(0) ? ctx.output(0).data<float>() : nullptr,
               ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr,
               ctx.has_output(2) ? ctx.output(2).data<float>() : nullptr);
  }
  // x is read only for dw and db.
  Status Run(const float* dy, const float* x, const float* wt, float* dx, float* dw, float* db) {
    // Primitives exist for the outputs the node names; a run that asks for another one (only a
    // harness calling the kernel by hand does) takes the im2col path.
    if (onednn_ && (!dx || data_) && (!dw || weights_ || bias_) && (!db || bias_)) {
      try {
        ComputeOnednn(dy, x, wt, dx, dw, db);
      } catch (const dnnl::error& e) {
        return OnednnFailed(e);
      }
      return Status::OK();
    }
    const int64_t plane = s_.w.InSize();
    if (dx) std::fill(dx, dx + s_.n * s_.c * plane, 0.0f);
    if (dw) std::fill(dw, dw + s_.m * s_.k, 0.0f);
    std::vector<float>& col = col_;
    for (int64_t n = 0; n < s_.n; ++n)
      for (int64_t g = 0; g < s_.group; ++g) {
        const float* dyg = dy + (n * s_.m + g * s_.mg) * s_.p;
        const int64_t xoff = (n * s_.c + g * s_.cg) * plane;
        if (dw) {
          Im2Col(x + xoff, s_.cg, s_.w, col.data());
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s_.mg), int(s_.k), int(s_.p), 1.0f, dyg, int(s_.p),
                      col.data(), int(s_.p), 1.0f, dw + g * s_.mg * s_.k, int(s_.k));
        }
        if (dx) {
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(s_.k), int(s_.p), int(s_.mg), 1.0f,
                      wt + g * s_.mg * s_.k, int(s_.k), dyg, int(s_.p), 0.0f, col.data(), int(s_.p));
          Col2ImAdd(col.data(), s_.cg, s_.w, dx + xoff);
        }
      }
    if (db) BiasGrad(dy, s_.n, s_.m, s_.p, db);
    return Status::OK();
  }

 private:
  // Backward-data and backward-weights primitives for the outputs the node has, each hinted by the
  // forward primitive (oneDNN picks matching layouts). dB rides on the weights primitive; a node that
  // asks for dB alone still gets dW computed into a buffer of the kernel's own.
  void InitOnednn() {
    const OnednnConv c(s_);
    const auto fwd = c.Forward(bias_);
    memory::desc dy_data_desc;
    if (data_) {
      const dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, c.x_any, c.w_any, c.y_any,
                                                    c.strides, c.dilates, c.pad_l, c.pad_r);
      const dnnl::convolution_backward_data::primitive_desc pd(d, cpu::OnednnEngine(), fwd);
      bwd_data_ = dnnl::convolution_backward_data(pd);
      dy_data_desc = pd.diff_dst_desc();
      dy_data_ = cpu::OnednnLayout(c.y, dy_data_desc, 0);
      w_ = cpu::OnednnLayout(c.w, pd.weights_desc(), 1);
      dx_ = cpu::OnednnLayout(c.x, pd.diff_src_desc(), 2);
    }
    if (weights_ || bias_) {
      const dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, c.x_any, c.w_any,
                                                       bias_ ? c.b_any : memory::desc(), c.y_any, c.strides,
                                                       c.dilates, c.pad_l, c.pad_r);
      const dnnl::convolution_backward_weights::primitive_desc pd(d, cpu::OnednnEngine(), fwd);
      bwd_weights_ = dnnl::convolution_backward_weights(pd);
      dy_weights_ = cpu::OnednnLayout(c.y, pd.diff_dst_desc(), 3);
      share_dy_ = data_ && pd.diff_dst_desc() == dy_data_desc;  // one reorder of dY serves both
      x_ = cpu::OnednnLayout(c.x, pd.src_desc(), 4);
      dw_ = cpu::OnednnLayout(c.w, pd.diff_weights_desc(), 5);
      dw_desc_ = pd.diff_weights_desc();
      if (bias_) db_ = memory(c.b, cpu::OnednnEngine(), DNNL_MEMORY_NONE);
    }
    stream_ = dnnl::stream(cpu::OnednnEngine());
  }

  void ComputeOnednn(const float* dy, const float* x, const float* wt, float* dx, float* dw, float* db) {
    memory dy_mem;
    if (dx) {
      dy_mem = dy_data_.In(stream_, dy);
      bwd_data_.execute(stream_, {{DNNL_ARG_DIFF_DST, dy_mem},
                                  {DNNL_ARG_WEIGHTS, w_.In(stream_, wt)},
                                  {DNNL_ARG_DIFF_SRC, dx_.Target(dx)}});
      dx_.Out(stream_, dx);
    }
    if (dw || db) {
      // The primitive writes dW and, when built with it, dB: one the run does not want goes to a
      // buffer of the kernel's own, allocated on first need.
      if (!dw && !dw_scratch_) dw_scratch_ = memory(dw_desc_, cpu::OnednnEngine());
      if (bias_ && !db && !db_scratch_) db_scratch_ = memory(db_.get_desc(), cpu::OnednnEngine());
      if (dx && !share_dy_) dy_mem = memory();
      std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, dy_mem ? dy_mem : dy_weights_.In(stream_, dy)},
                                           {DNNL_ARG_SRC, x_.In(stream_, x)},
                                           {DNNL_ARG_DIFF_WEIGHTS, dw ? dw_.Target(dw) : dw_scratch_}};
      if (bias_) {
        if (db) db_.set_data_handle(db);
        args.emplace(DNNL_ARG_DIFF_BIAS, db ? db_ : db_scratch_);
      }
      bwd_weights_.execute(stream_, args);
      if (dw) dw_.Out(stream_, dw);
    }
    stream_.wait();
  }

  conv::ConvShape s_;
  bool data_ = false, weights_ = false, bias_ = false, onednn_ = false, share_dy_ = false;
  dnnl::convolution_backward_data bwd_data_;
  dnnl::convolution_backward_weights bwd_weights_;
  cpu::OnednnLayout dy_data_, dy_weights_, w_, x_, dx_, dw_;
  memory::desc dw_desc_;
  memory db_, dw_scratch_, db_scratch_;
  dnnl::stream stream_;
  std::vector<float> col_;  // im2col's buffer, one image and group (fallback only)
};

// (X, W[, B]) -> Y;  X:(N,C,spatial...)  W:(C,M/group,k...)  B:(M)  Y:(N,M,spatial'...).
// Y = col2im(W_g^T @ X_g) per image and group (+ B): the dX of the adjoint conv with dY = X.
class ConvTransposeKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, conv::ReadConvTranspose(node, node.input(0), node.input(1), node.output(0)));
    adjoint_.InitShape(s_, /*data=*/true, /*weights=*/false, /*bias=*/false);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    float* y = ctx.output(0).data<float>();
    RETURN_IF_ERROR(adjoint_.Run(ctx.input(0).data<float>(), nullptr, ctx.input(1).data<float>(), y, nullptr, nullptr));
    if (!ctx.has_input(2)) return Status::OK();
    const float* b = ctx.input(2).data<float>();
    const int64_t hw = s_.w.InSize();
#pragma omp parallel for if (s_.n * s_.c * hw > nn::kParallelThreshold)
    for (int64_t nc = 0; nc < s_.n * s_.c; ++nc)
      for (int64_t i = 0; i < hw; ++i) y[nc * hw + i] += b[nc % s_.c];
    return Status::OK();
  }

 private:
  conv::ConvShape s_;  // the adjoint conv's: c = M, m = C, input = Y's spatial dims, output = X's
  ConvGradKernel adjoint_;
};

// (dY, X, W) -> dX, dW, dB (each optional) of ConvTranspose:  dX = Conv(dY, W) (the adjoint conv's
// forward), dW = the adjoint conv's weight gradient with dY in the place of its input and X of its
// output gradient, dB = sum of dY over N and the spatial dims.
class ConvTransposeGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, conv::ReadConvTranspose(node, node.input(1), node.input(2), node.input(0)));
    // Both, whatever outputs the node names: a harness may ask for any of them.
    conv_.InitShape(s_, /*bias=*/false);
    weights_.InitShape(s_, /*data=*/false, /*weights=*/true, /*bias=*/false);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    const float* wt = ctx.input(2).data<float>();
    if (ctx.has_output(0)) RETURN_IF_ERROR(conv_.Run(dy, wt, nullptr, ctx.output(0).data<float>()));
    if (ctx.has_output(1)) RETURN_IF_ERROR(weights_.Run(x, dy, wt, nullptr, ctx.output(1).data<float>(), nullptr));
    if (ctx.has_output(2)) BiasGrad(dy, s_.n, s_.c, s_.w.InSize(), ctx.output(2).data<float>());
    return Status::OK();
  }

 private:
  conv::ConvShape s_;
  ConvKernel conv_;
  ConvGradKernel weights_;
};

DSC_REGISTER_KERNEL("", "Conv", kCpu, kFloat32, MakeFactory<ConvKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kConvGrad, kCpu, kFloat32, MakeFactory<ConvGradKernel>());
DSC_REGISTER_KERNEL("", "ConvTranspose", kCpu, kFloat32, MakeFactory<ConvTransposeKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kConvTransposeGrad, kCpu, kFloat32, MakeFactory<ConvTransposeGradKernel>());

}  // namespace
}  // namespace dsc
