// Einsum on CUDA for float32, float16, bfloat16 and float64, like kernels/cpu/einsum.cc: a
// two-operand contraction that is a GEMM (einsum::LowerToGemm) runs as gathers into (batch, M, K)
// and (batch, K, N), one batched cuBLASLt GEMM into float32 and a gather back in the output's
// label order (float types); everything else (and float64) is the CPU's direct loop
// (einsum::Element, double accumulation), one thread per output element.
#include <type_traits>
#include <vector>

#include "ir/einsum_equation.h"
#include "kernels/common/einsum_math.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/gemm.h"

namespace dsc::cuda {
namespace {

// Widening loads for einsum::Element (host-callable too, as Element is __host__ __device__).
struct LoadDouble {
  DSC_HD double operator()(double v) const { return v; }
  DSC_HD double operator()(float v) const { return static_cast<double>(v); }
  DSC_HD double operator()(half v) const { return static_cast<double>(__half2float(v)); }
  DSC_HD double operator()(bf16 v) const { return static_cast<double>(__bfloat162float(v)); }
};

template <typename T>
__device__ __forceinline__ T FromDouble(double v) {
  if constexpr (std::is_same_v<T, double>)
    return v;
  else
    return FromFloat<T>(static_cast<float>(v));  // the CPU rounds to float32 first (the half adaptor after)
}

template <typename T>
struct Operands {
  const T* x[einsum::kMaxOperands];
};

// table: out_dims (rank), out_strides (nops * rank), sum_offsets (combos * nops).
template <typename T>
__global__ void EinsumDirectKernel(Operands<T> ops, int nops, int64_t rank, const int64_t* table, int64_t combos,
                                   int64_t n, T* y) {
  const int64_t* out_strides = table + rank;
  const int64_t* sums = out_strides + nops * rank;
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x)
    y[o] = FromDouble<T>(einsum::Element(o, rank, table, out_strides, nops, ops.x, sums, combos, LoadDouble{}));
}

// dst[o] = src[sum_d coord_d(o) * strides[d]] over `dims` (table: dims, then strides), converted.
__global__ void StridedGatherKernel(const void* src, DType st, const int64_t* table, int64_t rank, int64_t n, void* dst,
                                    DType dt) {
  const int64_t* strides = table + rank;
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t rest = o, at = 0;
    for (int64_t d = rank - 1; d >= 0; --d) {
      at += rest % table[d] * strides[d];
      rest /= table[d];
    }
    StoreAny(dst, dt, o, LoadAny(src, st, at));
  }
}

std::vector<int64_t> Concat(std::initializer_list<const std::vector<int64_t>*> parts) {
  std::vector<int64_t> out;
  for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

template <typename T>
class EinsumCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    if (node.num_inputs() < 1 || node.num_inputs() > static_cast<size_t>(einsum::kMaxOperands))
      return Unimplemented("Einsum with ", node.num_inputs(), " operands (1 to ", einsum::kMaxOperands, " supported)");
    std::vector<std::vector<int64_t>> shapes;
    for (size_t k = 0; k < node.num_inputs(); ++k) {
      const Value* v = node.input(k);
      if (!v || !v->type.shape || !IsStatic(*v->type.shape)) return InvalidArgument("Einsum needs static shapes");
      if (v->type.dtype != DTypeOf<T>())
        return Unimplemented("Einsum operands of two dtypes (", DTypeName(v->type.dtype), ", ", DTypeName(DTypeOf<T>()),
                             ")");
      std::vector<int64_t> dims;
      for (const Dim& d : *v->type.shape) dims.push_back(d.value);
      shapes.push_back(std::move(dims));
    }
    ASSIGN_OR_RETURN(EinsumEquation eq, ParseEinsum(node.GetString("equation", ""), shapes));
    einsum::EinsumTables t = einsum::MakeTables(eq, shapes, /*with_sums=*/false);
    n_ = 1;
    for (int64_t d : t.out_dims) n_ *= d;
    if (!std::is_same_v<T, double>) {
      einsum::GemmLowering g;
      if (einsum::LowerToGemm(eq, shapes, t, &g)) {
        gemm_path_ = true;
        a_.host() = Concat({&g.a_dims, &g.a_strides});
        b_.host() = Concat({&g.b_dims, &g.b_strides});
        y_.host() = Concat({&g.y_dims, &g.y_strides});
        a_rank_ = static_cast<int64_t>(g.a_dims.size());
        b_rank_ = static_cast<int64_t>(g.b_dims.size());
        y_rank_ = static_cast<int64_t>(g.y_dims.size());
        gemm_.Reset(GemmShape{.a = DTypeOf<T>(),
                              .b = DTypeOf<T>(),
                              .d = DType::kFloat32,
                              .m = g.m,
                              .n = g.n,
                              .k = g.k,
                              .batch = g.batch,
                              .stride_a = g.m * g.k,
                              .stride_b = g.k * g.n,
                              .stride_d = g.m * g.n});
        return Status::OK();
      }
    }
    t = einsum::MakeTables(eq, shapes, /*with_sums=*/true);
    nops_ = static_cast<int>(shapes.size());
    rank_ = static_cast<int64_t>(t.out_dims.size());
    combos_ = t.combos;
    table_.host() = Concat({&t.out_dims, &t.out_strides, &t.sum_offsets});
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    T* y = ctx.output(0).data<T>();
    if (n_ == 0) return Status::OK();
    if (gemm_path_) return RunGemm(ctx, res, y);
    Operands<T> ops{};
    for (int k = 0; k < nops_; ++k) ops.x[k] = ctx.input(static_cast<size_t>(k)).data<T>();
    ASSIGN_OR_RETURN(const int64_t* table, table_.Get(res->compute));
    EinsumDirectKernel<T><<<GridFor(*res, n_), kThreads, 0, res->compute>>>(ops, nops_, rank_, table, combos_, n_, y);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  Status RunGemm(KernelContext& ctx, Resources* res, T* y) {
    const GemmShape& s = gemm_.shape();
    const int64_t na = s.batch * s.m * s.k, nb = s.batch * s.k * s.n, ny = s.batch * s.m * s.n;
    const size_t a_bytes = AlignUp(static_cast<size_t>(na) * sizeof(T)),
                 b_bytes = AlignUp(static_cast<size_t>(nb) * sizeof(T));
    ASSIGN_OR_RETURN(void* scratch, res->Scratch(a_bytes + b_bytes + static_cast<size_t>(ny) * sizeof(float)));
    char* base = static_cast<char*>(scratch);
    T* a = reinterpret_cast<T*>(base);
    T* b = reinterpret_cast<T*>(base + a_bytes);
    float* yf = reinterpret_cast<float*>(base + a_bytes + b_bytes);
    ASSIGN_OR_RETURN(const int64_t* at, a_.Get(res->compute));
    ASSIGN_OR_RETURN(const int64_t* bt, b_.Get(res->compute));
    ASSIGN_OR_RETURN(const int64_t* yt, y_.Get(res->compute));
    const DType t = DTypeOf<T>();
    if (na > 0) {
      StridedGatherKernel<<<GridFor(*res, na), kThreads, 0, res->compute>>>(ctx.input(0).ptr, t, at, a_rank_, na, a, t);
      DSC_CUDA_CHECK_LAUNCH();
    }
    if (nb > 0) {
      StridedGatherKernel<<<GridFor(*res, nb), kThreads, 0, res->compute>>>(ctx.input(1).ptr, t, bt, b_rank_, nb, b, t);
      DSC_CUDA_CHECK_LAUNCH();
    }
    RETURN_IF_ERROR(gemm_.Run(res, 1.0f, a, b, 0.0f, yf));
    StridedGatherKernel<<<GridFor(*res, n_), kThreads, 0, res->compute>>>(yf, DType::kFloat32, yt, y_rank_, n_, y, t);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

  int64_t n_ = 0;
  // Direct loop.
  int nops_ = 0;
  int64_t rank_ = 0, combos_ = 1;
  DeviceTable<int64_t> table_;
  // GEMM path.
  bool gemm_path_ = false;
  DeviceTable<int64_t> a_, b_, y_;
  int64_t a_rank_ = 0, b_rank_ = 0, y_rank_ = 0;
  Gemm gemm_;
};

DSC_REGISTER_CUDA_FLOATS("", "Einsum", EinsumCuda);
DSC_REGISTER_KERNEL("", "Einsum", kCuda, kFloat64, ::dsc::MakeFactory<EinsumCuda<double>>());

}  // namespace
}  // namespace dsc::cuda
