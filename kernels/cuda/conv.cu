// 1-D, 2-D and 3-D convolution (Conv) and ConvGrad on CUDA for float32, float16 and bfloat16, as
// im2col + cuBLASLt GEMMs like kernels/cpu/conv.cc (same shapes, same index math from
// kernels/common/conv_math.h); half values accumulate in float32 and round once. ConvTranspose and
// ConvTransposeGrad run the same kernels on the adjoint conv (conv::ReadConvTranspose), as on the CPU.
//
// col2im is a gather (each input element sums its taps in (kd, kh, kw) order, the order the CPU adds
// them in), so no atomics and repeatable results. Images run in chunks that bound the im2col
// scratch.
#include <algorithm>
#include <type_traits>

#include "ir/dsc_ops.h"
#include "kernels/common/conv_math.h"
#include "kernels/common/conv_shape.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/gemm.h"

namespace dsc::cuda {
namespace {

constexpr size_t kColBudget = size_t{512} << 20;  // bytes of im2col scratch per chunk of images

// col:(nc, group, K, P) of images n0.. of x:(N, C, spatial...): the unfolded windows, 0 on padding.
template <typename T>
__global__ void Im2ColKernel(const T* x, conv::ConvShape s, int64_t n0, int64_t nc, T* col) {
  const int64_t total = nc * s.group * s.k * s.p, hw = s.w.InSize();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t p = i % s.p, row = i / s.p % s.k, g = i / (s.p * s.k) % s.group, n = i / (s.p * s.k * s.group);
    const int64_t src = conv::Im2ColSource(s.w, row, p);
    col[i] = src < 0 ? FromFloat<T>(0.0f) : x[((n0 + n) * s.c + g * s.cg) * hw + src];
  }
}

// dx (images n0..n0+nc) = col2im(colf) (+ bias per channel of dx, for ConvTranspose), colf:(nc, group,
// K, P) float32; a gather per input element.
template <typename T>
__global__ void Col2ImKernel(const float* colf, const T* bias, conv::ConvShape s, int64_t n0, int64_t nc, T* dx) {
  const nn::Window& w = s.w;
  const int64_t hw = w.InSize(), total = nc * s.c * hw, taps = w.Taps();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = i / hw % s.c, n = i / (hw * s.c);
    const int64_t g = c / s.cg, cl = c % s.cg;
    int64_t ip[3];
    nn::Unflatten(w.in, i % hw, ip);
    const float* base = colf + ((n * s.group + g) * s.k + cl * taps) * s.p;
    float acc = 0.0f;
    for (int64_t ka = 0; ka < w.k[0]; ++ka) {
      const int64_t oz = conv::OutputPos(ip[0], w.s[0], w.pb[0], ka, w.d[0], w.out[0]);
      if (oz < 0) continue;
      for (int64_t kb = 0; kb < w.k[1]; ++kb) {
        const int64_t oy = conv::OutputPos(ip[1], w.s[1], w.pb[1], kb, w.d[1], w.out[1]);
        if (oy < 0) continue;
        for (int64_t kc = 0; kc < w.k[2]; ++kc) {
          const int64_t ox = conv::OutputPos(ip[2], w.s[2], w.pb[2], kc, w.d[2], w.out[2]);
          if (ox < 0) continue;
          acc += base[((ka * w.k[1] + kb) * w.k[2] + kc) * s.p + (oz * w.out[1] + oy) * w.out[2] + ox];
        }
      }
    }
    if (bias) acc += ToFloat(bias[c]);
    dx[n0 * s.c * hw + i] = FromFloat<T>(acc);
  }
}

// y (images n0..) = yf (+ bias per output channel), rounded once; yf may alias y when T is float.
template <typename T>
__global__ void BiasKernel(const float* yf, const T* bias, conv::ConvShape s, int64_t n0, int64_t nc, T* y) {
  const int64_t total = nc * s.m * s.p;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    float v = yf[i];
    if (bias) v += ToFloat(bias[i / s.p % s.m]);
    y[n0 * s.m * s.p + i] = FromFloat<T>(v);
  }
}

// dB[m] = sum over images and positions of dY:(n, channels, p), in double (like the CPU); one block
// per channel, a fixed reduction tree so runs repeat.
template <typename T>
__global__ void BiasGradKernel(const T* dy, int64_t n, int64_t channels, int64_t p, T* db) {
  __shared__ double part[kThreads];
  const int64_t m = blockIdx.x, per = n * p;
  double sum = 0;
  for (int64_t i = threadIdx.x; i < per; i += blockDim.x) sum += ToFloat(dy[(i / p * channels + m) * p + i % p]);
  part[threadIdx.x] = sum;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[m] = FromFloat<T>(static_cast<float>(part[0]));
}

// Images per chunk: as many as fit `bytes_per_image` into the budget, at least one.
int64_t ChunkOf(const conv::ConvShape& s, size_t bytes_per_image) {
  const int64_t fit = static_cast<int64_t>(kColBudget / std::max<size_t>(bytes_per_image, 1));
  return std::max<int64_t>(1, std::min<int64_t>(s.n, fit));
}

template <typename T>
constexpr bool kIsFloat = std::is_same_v<T, float>;

// Every input and output of the node is T: the kernels take one dtype.
template <typename T>
Status CheckDtypes(const Node& node) {
  for (size_t i = 0; i < node.num_inputs(); ++i)
    if (node.input(i) && node.input(i)->type.dtype != DTypeOf<T>())
      return Unimplemented(node.op_type(), " with mixed dtypes (input ", i, " is ",
                           DTypeName(node.input(i)->type.dtype), ", the kernel's ", DTypeName(DTypeOf<T>()), ")");
  for (size_t i = 0; i < node.num_outputs(); ++i)
    if (node.output(i) && node.output(i)->type.dtype != DTypeOf<T>())
      return Unimplemented(node.op_type(), " output ", i, " is ", DTypeName(node.output(i)->type.dtype));
  return Status::OK();
}

// (X, W[, B]) -> Y;  X:(N,C,spatial...)  W:(M,C/group,k...)  B:(M)  Y:(N,M,spatial'...)
template <typename T>
class ConvCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(conv::ConvShape s, conv::ReadConv(node, node.input(0), node.input(1), node.output(0)));
    RETURN_IF_ERROR(CheckDtypes<T>(node));
    InitShape(s);
    return Status::OK();
  }
  void InitShape(const conv::ConvShape& s) {
    s_ = s;
    nc_ = ChunkOf(s_, static_cast<size_t>(s_.group * s_.k * s_.p) * sizeof(T));
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    return Run(res, ctx.input(0).data<T>(), ctx.input(1).data<T>(), ctx.has_input(2) ? ctx.input(2).data<T>() : nullptr,
               ctx.output(0).data<T>());
  }
  Status Run(Resources* res, const T* x, const T* wt, const T* b, T* y) {
    if (s_.n * s_.m * s_.p == 0) return Status::OK();
    const size_t col_bytes = AlignUp(static_cast<size_t>(nc_ * s_.group * s_.k * s_.p) * sizeof(T));
    const size_t yf_bytes = kIsFloat<T> ? 0 : static_cast<size_t>(nc_ * s_.m * s_.p) * sizeof(float);
    ASSIGN_OR_RETURN(void* scratch, res->Scratch(col_bytes + yf_bytes));
    T* col = static_cast<T*>(scratch);
    float* yf_scratch = reinterpret_cast<float*>(static_cast<char*>(scratch) + col_bytes);
    for (int64_t n0 = 0; n0 < s_.n; n0 += nc_) {
      const int64_t nc = std::min(nc_, s_.n - n0);
      Im2ColKernel<T><<<GridFor(*res, nc * s_.group * s_.k * s_.p), kThreads, 0, res->compute>>>(x, s_, n0, nc, col);
      DSC_CUDA_CHECK_LAUNCH();
      float* yf = kIsFloat<T> ? reinterpret_cast<float*>(y) + n0 * s_.m * s_.p : yf_scratch;
      Gemm& gemm = Forward(nc);
      for (int64_t g = 0; g < s_.group; ++g)
        RETURN_IF_ERROR(gemm.Run(res, 1.0f, wt + g * s_.mg * s_.k, col + g * s_.k * s_.p, 0.0f, yf + g * s_.mg * s_.p));
      if (b || !kIsFloat<T>) {
        BiasKernel<T><<<GridFor(*res, nc * s_.m * s_.p), kThreads, 0, res->compute>>>(yf, b, s_, n0, nc, y);
        DSC_CUDA_CHECK_LAUNCH();
      }
    }
    return Status::OK();
  }

 private:
  // Per group: Y_g of nc images = W_g (shared) @ col_g of each image, into float32.
  Gemm& Forward(int64_t nc) {
    Gemm& g = nc == nc_ ? full_ : tail_;
    if (g.shape().batch != nc || g.shape().m == 0)
      g.Reset(GemmShape{.a = DTypeOf<T>(),
                        .b = DTypeOf<T>(),
                        .d = DType::kFloat32,
                        .m = s_.mg,
                        .n = s_.p,
                        .k = s_.k,
                        .lda = s_.k,
                        .ldb = s_.p,
                        .ldd = s_.p,
                        .batch = nc,
                        .stride_a = 0,
                        .stride_b = s_.group * s_.k * s_.p,
                        .stride_d = s_.m * s_.p});
    return g;
  }

  conv::ConvShape s_;
  int64_t nc_ = 1;
  Gemm full_, tail_;
};

// (dY, X, W) -> dX, dW, dB (each optional); see kernels/cpu/conv.cc.
template <typename T>
class ConvGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(conv::ConvShape s, conv::ReadConv(node, node.input(1), node.input(2), node.input(0)));
    RETURN_IF_ERROR(CheckDtypes<T>(node));
    InitShape(s);
    return Status::OK();
  }
  void InitShape(const conv::ConvShape& s) {
    s_ = s;
    // A chunk holds the im2col of X (T) and the float32 columns of dX.
    nc_ = ChunkOf(s_, static_cast<size_t>(s_.group * s_.k * s_.p) * (sizeof(T) + sizeof(float)));
    // dW_g += dY_{n,g}:(Mg, P) @ col_{n,g}^T:(P, K), one image at a time, accumulated in float32.
    dw_gemm_.Reset(GemmShape{.a = DTypeOf<T>(),
                             .b = DTypeOf<T>(),
                             .d = DType::kFloat32,
                             .trans_b = true,
                             .m = s_.mg,
                             .n = s_.k,
                             .k = s_.p,
                             .lda = s_.p,
                             .ldb = s_.p,
                             .ldd = s_.k});
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    return Run(res, ctx.input(0).data<T>(), ctx.input(1).data<T>(), ctx.input(2).data<T>(),
               ctx.has_output(0) ? ctx.output(0).data<T>() : nullptr,
               ctx.has_output(1) ? ctx.output(1).data<T>() : nullptr,
               ctx.has_output(2) ? ctx.output(2).data<T>() : nullptr);
  }
  // x is read only for dw; `dx_bias` (ConvTranspose's B, per channel of dx) is added to dx.
  Status Run(Resources* res, const T* dy, const T* x, const T* wt, T* dx, T* dw, T* db, const T* dx_bias = nullptr) {
    const size_t col_bytes = AlignUp(static_cast<size_t>(nc_ * s_.group * s_.k * s_.p) * sizeof(T));
    const size_t colf_bytes = AlignUp(static_cast<size_t>(nc_ * s_.group * s_.k * s_.p) * sizeof(float));
    const size_t dwf_bytes = kIsFloat<T> ? 0 : static_cast<size_t>(s_.m * s_.k) * sizeof(float);
    ASSIGN_OR_RETURN(void* scratch, res->Scratch(col_bytes + colf_bytes + dwf_bytes));
    char* base = static_cast<char*>(scratch);
    T* col = reinterpret_cast<T*>(base);
    float* colf = reinterpret_cast<float*>(base + col_bytes);
    float* dwf =
        dw ? (kIsFloat<T> ? reinterpret_cast<float*>(dw) : reinterpret_cast<float*>(base + col_bytes + colf_bytes))
           : nullptr;
    if (dwf) DSC_CUDA_CHECK(cudaMemsetAsync(dwf, 0, static_cast<size_t>(s_.m * s_.k) * sizeof(float), res->compute));
    const int64_t hw = s_.w.InSize();
    if (dx && s_.p == 0) {
      DSC_CUDA_CHECK(cudaMemsetAsync(dx, 0, static_cast<size_t>(s_.n * s_.c * hw) * sizeof(T), res->compute));
      if (dx_bias) return Unimplemented("ConvTranspose of an empty input with a bias");
    }
    if (s_.p > 0 && (dx || dw))
      for (int64_t n0 = 0; n0 < s_.n; n0 += nc_) {
        const int64_t nc = std::min(nc_, s_.n - n0);
        if (dw) {
          Im2ColKernel<T>
              <<<GridFor(*res, nc * s_.group * s_.k * s_.p), kThreads, 0, res->compute>>>(x, s_, n0, nc, col);
          DSC_CUDA_CHECK_LAUNCH();
          for (int64_t n = 0; n < nc; ++n)
            for (int64_t g = 0; g < s_.group; ++g)
              RETURN_IF_ERROR(dw_gemm_.Run(res, 1.0f, dy + ((n0 + n) * s_.m + g * s_.mg) * s_.p,
                                           col + (n * s_.group + g) * s_.k * s_.p, 1.0f, dwf + g * s_.mg * s_.k));
        }
        if (dx) {
          // col_{n,g}:(K, P) = W_g^T:(K, Mg) @ dY_{n,g}:(Mg, P), in float32, then col2im.
          Gemm& gemm = Backward(nc);
          for (int64_t g = 0; g < s_.group; ++g)
            RETURN_IF_ERROR(gemm.Run(res, 1.0f, wt + g * s_.mg * s_.k, dy + (n0 * s_.m + g * s_.mg) * s_.p, 0.0f,
                                     colf + g * s_.k * s_.p));
          Col2ImKernel<T>
              <<<GridFor(*res, nc * s_.c * hw), kThreads, 0, res->compute>>>(colf, dx_bias, s_, n0, nc, dx);
          DSC_CUDA_CHECK_LAUNCH();
        }
      }
    if (dw && !kIsFloat<T>) RETURN_IF_ERROR(ConvertDevice(res, dwf, DType::kFloat32, dw, DTypeOf<T>(), s_.m * s_.k));
    if (db && s_.m > 0) {
      BiasGradKernel<T><<<static_cast<unsigned>(s_.m), kThreads, 0, res->compute>>>(dy, s_.n, s_.m, s_.p, db);
      DSC_CUDA_CHECK_LAUNCH();
    }
    return Status::OK();
  }

 private:
  Gemm& Backward(int64_t nc) {
    Gemm& g = nc == nc_ ? dx_full_ : dx_tail_;
    if (g.shape().batch != nc || g.shape().m == 0)
      g.Reset(GemmShape{.a = DTypeOf<T>(),
                        .b = DTypeOf<T>(),
                        .d = DType::kFloat32,
                        .trans_a = true,
                        .m = s_.k,
                        .n = s_.p,
                        .k = s_.mg,
                        .lda = s_.k,
                        .ldb = s_.p,
                        .ldd = s_.p,
                        .batch = nc,
                        .stride_a = 0,
                        .stride_b = s_.m * s_.p,
                        .stride_d = s_.group * s_.k * s_.p});
    return g;
  }

  conv::ConvShape s_;
  int64_t nc_ = 1;
  Gemm dw_gemm_, dx_full_, dx_tail_;
};

// (X, W[, B]) -> Y;  X:(N,C,spatial...)  W:(C,M/group,k...)  B:(M)  Y:(N,M,spatial'...): the adjoint conv's dX
// with dY = X, B added in its col2im; see kernels/cpu/conv.cc.
template <typename T>
class ConvTransposeCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(conv::ConvShape s, conv::ReadConvTranspose(node, node.input(0), node.input(1), node.output(0)));
    RETURN_IF_ERROR(CheckDtypes<T>(node));
    adjoint_.InitShape(s);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    return adjoint_.Run(res, ctx.input(0).data<T>(), nullptr, ctx.input(1).data<T>(), ctx.output(0).data<T>(), nullptr,
                        nullptr, ctx.has_input(2) ? ctx.input(2).data<T>() : nullptr);
  }

 private:
  ConvGradCuda<T> adjoint_;
};

// (dY, X, W) -> dX, dW, dB of ConvTranspose: dX = the adjoint conv's forward of dY, dW its weight
// gradient with dY as its input and X as its output gradient, dB = sum of dY over N and space.
template <typename T>
class ConvTransposeGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, conv::ReadConvTranspose(node, node.input(1), node.input(2), node.input(0)));
    RETURN_IF_ERROR(CheckDtypes<T>(node));
    conv_.InitShape(s_);
    weights_.InitShape(s_);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    const T* dy = ctx.input(0).data<T>();
    const T* x = ctx.input(1).data<T>();
    const T* wt = ctx.input(2).data<T>();
    if (ctx.has_output(0)) RETURN_IF_ERROR(conv_.Run(res, dy, wt, nullptr, ctx.output(0).data<T>()));
    if (ctx.has_output(1))
      RETURN_IF_ERROR(weights_.Run(res, x, dy, wt, nullptr, ctx.output(1).data<T>(), nullptr));
    const int64_t hw = s_.w.InSize();
    if (ctx.has_output(2) && s_.c > 0) {
      BiasGradKernel<T>
          <<<static_cast<unsigned>(s_.c), kThreads, 0, res->compute>>>(dy, s_.n, s_.c, hw, ctx.output(2).data<T>());
      DSC_CUDA_CHECK_LAUNCH();
    }
    return Status::OK();
  }

 private:
  conv::ConvShape s_;
  ConvCuda<T> conv_;
  ConvGradCuda<T> weights_;
};

DSC_REGISTER_CUDA_FLOATS("", "Conv", ConvCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kConvGrad, ConvGradCuda);
DSC_REGISTER_CUDA_FLOATS("", "ConvTranspose", ConvTransposeCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kConvTransposeGrad, ConvTransposeGradCuda);

}  // namespace
}  // namespace dsc::cuda
