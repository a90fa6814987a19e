// CUDA ReduceSum/Mean/Prod/Max/Min, the twin of kernels/cpu/reduce.cc (same plan, same steps).
//
// X:(outer, R, inner): with inner == 1 and long rows a block reduces each row; with few outputs
// and long R, blocks reduce chunks of R for 32 adjacent outputs and a second kernel combines the
// chunks; otherwise one thread per output walks its R values (coalesced across inner). Other axis sets walk the reduced
// dims from tables passed by value. Half values reduce in float (sums in double), as the CPU's
// half adaptor does through the float32 kernel.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/common/reduce_math.h"
#include "kernels/common/reduce_plan.h"
#include "kernels/cuda/row_util.cuh"

namespace dsc::cuda {
namespace {

// The type a T reduces in: float for half types, T otherwise.
template <typename T>
using ValOf = std::conditional_t<std::is_same_v<T, half> || std::is_same_v<T, bf16>, float, T>;
template <typename T> __device__ __forceinline__ ValOf<T> LoadV(T x) {
  if constexpr (std::is_same_v<ValOf<T>, float> && !std::is_same_v<T, float>) return ToFloat(x);
  else return x;
}
template <typename T> __device__ __forceinline__ T StoreV(ValOf<T> v) {
  if constexpr (std::is_same_v<ValOf<T>, float> && !std::is_same_v<T, float>) return FromFloat<T>(v);
  else return v;
}

constexpr int kMaxRank = 8;
struct GenericTables {
  int n_kept = 0, n_red = 0;
  int64_t kept_dims[kMaxRank], kept_strides[kMaxRank], red_dims[kMaxRank], red_strides[kMaxRank];
};

// Rows of R contiguous values, one block each.
template <typename T, typename Red>
__global__ void ReduceRowsBlock(const T* x, T* y, int64_t rows, int64_t r_len) {
  using Acc = typename Red::Acc;
  __shared__ Acc shared[32];
  struct Comb {
    __device__ Acc operator()(Acc a, Acc b) const { return Red::Combine(a, b); }
  };
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * r_len;
    Acc acc = Red::Start();
    for (int64_t k = threadIdx.x; k < r_len; k += blockDim.x) acc = Red::Step(acc, LoadV(xr[k]));
    acc = BlockReduceAll(acc, Comb{}, Red::Start(), shared);
    if (threadIdx.x == 0) y[row] = StoreV<T>(Red::Finish(acc, r_len));
  }
}

// X:(outer, R, inner) -> Y:(outer, inner), one thread per output, R walked in order.
template <typename T, typename Red>
__global__ void ReduceStrided(const T* x, T* y, int64_t outer, int64_t r_len, int64_t inner) {
  const int64_t n = outer * inner;
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t oo = o / inner, i = o % inner;
    const T* base = x + oo * r_len * inner + i;
    typename Red::Acc acc = Red::Start();
    for (int64_t r = 0; r < r_len; ++r) acc = Red::Step(acc, LoadV(base[r * inner]));
    y[o] = StoreV<T>(Red::Finish(acc, r_len));
  }
}

// X:(outer, R, inner) with few outputs and long R (a bias gradient: (8*1024, 2304) -> 2304): one
// thread per output would leave most of the GPU idle and walk R alone, so R is split into chunks.
// Block (32, kColLanes) takes 32 adjacent columns (coalesced) of one chunk, its row lanes
// combined in a fixed order into part[s][outer*inner]; ReduceColumnsFinish combines the chunks in
// order. Deterministic; sums still accumulate in double, so they match the CPU's up to rounding.
constexpr int kColLanes = 8;
template <typename T, typename Red>
__global__ void ReduceColumnsPartial(const T* x, typename Red::Acc* part, int64_t outer, int64_t r_len,
                                     int64_t inner, int64_t col_tiles, int64_t splits, int64_t chunk) {
  using Acc = typename Red::Acc;
  __shared__ Acc lanes[kColLanes][33];
  // Block b: chunk s of column tile `tile` of outer index o.
  const int64_t b = blockIdx.x, s = b % splits, tile = (b / splits) % col_tiles, o = b / splits / col_tiles;
  const int64_t col = tile * 32 + threadIdx.x;
  Acc acc = Red::Start();
  if (col < inner) {
    const int64_t r1 = s * chunk + chunk < r_len ? s * chunk + chunk : r_len;
    const T* base = x + o * r_len * inner + col;
    for (int64_t r = s * chunk + threadIdx.y; r < r1; r += kColLanes) acc = Red::Step(acc, LoadV(base[r * inner]));
  }
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < inner) {
    for (int k = 1; k < kColLanes; ++k) acc = Red::Combine(acc, lanes[k][threadIdx.x]);
    part[s * outer * inner + o * inner + col] = acc;
  }
}
template <typename T, typename Red>
__global__ void ReduceColumnsFinish(const typename Red::Acc* part, T* y, int64_t n, int64_t splits, int64_t r_len) {
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    typename Red::Acc acc = part[o];
    for (int64_t s = 1; s < splits; ++s) acc = Red::Combine(acc, part[s * n + o]);
    y[o] = StoreV<T>(Red::Finish(acc, r_len));
  }
}

// Any axis set: each output unravels its kept index, then walks the reduced dims.
template <typename T, typename Red>
__global__ void ReduceGeneric(const T* x, T* y, int64_t y_numel, int64_t count, GenericTables t) {
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < y_numel;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t base = 0, rest = o;
    for (int d = t.n_kept; d-- > 0;) {
      base += (rest % t.kept_dims[d]) * t.kept_strides[d];
      rest /= t.kept_dims[d];
    }
    typename Red::Acc acc = Red::Start();
    for (int64_t r = 0; r < count; ++r) {
      int64_t off = base, rr = r;
      for (int d = t.n_red; d-- > 0;) {
        off += (rr % t.red_dims[d]) * t.red_strides[d];
        rr /= t.red_dims[d];
      }
      acc = Red::Step(acc, LoadV(x[off]));
    }
    y[o] = StoreV<T>(Red::Finish(acc, count));
  }
}

template <typename T, template <typename> class R>
class ReduceCuda : public OpKernel {
  using Red = R<ValOf<T>>;

 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> x_dims, cpu::StaticDims(node.input(0)));
    const bool noop_empty = node.GetInt("noop_with_empty_axes", 0) != 0;
    std::vector<int64_t> axes;
    if (node.input(1)) {
      if (!node.input(1)->is_initializer())
        return Unimplemented(node.op_type(), " on CUDA needs constant axes (input 1 is computed at run time)");
      axes = node.input(1)->initializer().ToInt64Vector();
    } else {
      axes = node.GetInts("axes");
    }
    ASSIGN_OR_RETURN(plan_, reduce::MakeReducePlan(x_dims, axes, noop_empty));
    ASSIGN_OR_RETURN(auto y_dims, cpu::StaticDims(node.output(0)));
    y_numel_ = cpu::Product(y_dims);
    const int64_t x_numel = cpu::Product(x_dims);
    if (!plan_.copy && plan_.count != 0 && y_numel_ * plan_.count != x_numel)
      return InvalidArgument("output has ", y_numel_, " elements; reducing leaves ", x_numel / plan_.count);
    if (!plan_.copy && !plan_.simple) {
      if (plan_.kept_dims.size() > kMaxRank || plan_.red_dims.size() > kMaxRank)
        return Unimplemented(node.op_type(), " on CUDA supports rank <= ", kMaxRank);
      t_.n_kept = static_cast<int>(plan_.kept_dims.size());
      t_.n_red = static_cast<int>(plan_.red_dims.size());
      for (int d = 0; d < t_.n_kept; ++d) t_.kept_dims[d] = plan_.kept_dims[d], t_.kept_strides[d] = plan_.kept_strides[d];
      for (int d = 0; d < t_.n_red; ++d) t_.red_dims[d] = plan_.red_dims[d], t_.red_strides[d] = plan_.red_strides[d];
    }
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& xv = ctx.input(0);
    TensorView& yv = ctx.output(0);
    if (plan_.copy) {
      if (xv.ptr != yv.ptr && xv.nbytes() > 0)
        DSC_CUDA_CHECK(cudaMemcpyAsync(yv.ptr, xv.ptr, xv.nbytes(), cudaMemcpyDeviceToDevice, r->compute));
      return Status::OK();
    }
    if (y_numel_ == 0) return Status::OK();
    const T* x = xv.data<T>();
    T* y = yv.data<T>();
    if (plan_.simple && plan_.inner == 1 && plan_.count >= 64) {
      ReduceRowsBlock<T, Red><<<RowGrid(*r, plan_.outer), RowThreads(plan_.count), 0, r->compute>>>(
          x, y, plan_.outer, plan_.count);
    } else if (plan_.simple && plan_.count >= 64 && y_numel_ < SmCount(*r) * 1024) {
      // Enough chunks of >= 64 rows for about 8 blocks of 256 threads per multiprocessor.
      const int64_t col_tiles = (plan_.inner + 31) / 32, tiles = plan_.outer * col_tiles;
      const int64_t want = (SmCount(*r) * 8 + tiles - 1) / tiles;
      int64_t splits = std::min<int64_t>(want, plan_.count / 64);
      const int64_t chunk = (plan_.count + splits - 1) / splits;
      splits = (plan_.count + chunk - 1) / chunk;
      using Acc = typename Red::Acc;
      ASSIGN_OR_RETURN(void* scratch, r->Scratch(static_cast<size_t>(splits * y_numel_) * sizeof(Acc)));
      Acc* part = static_cast<Acc*>(scratch);
      ReduceColumnsPartial<T, Red><<<static_cast<unsigned>(tiles * splits), dim3(32, kColLanes), 0, r->compute>>>(
          x, part, plan_.outer, plan_.count, plan_.inner, col_tiles, splits, chunk);
      DSC_CUDA_CHECK_LAUNCH();
      ReduceColumnsFinish<T, Red><<<GridFor(*r, y_numel_), kThreads, 0, r->compute>>>(part, y, y_numel_, splits,
                                                                                     plan_.count);
    } else if (plan_.simple) {
      ReduceStrided<T, Red><<<GridFor(*r, y_numel_), kThreads, 0, r->compute>>>(x, y, plan_.outer, plan_.count,
                                                                              plan_.inner);
    } else {
      ReduceGeneric<T, Red><<<GridFor(*r, y_numel_), kThreads, 0, r->compute>>>(x, y, y_numel_, plan_.count, t_);
    }
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  reduce::ReducePlan plan_;
  GenericTables t_;
  int64_t y_numel_ = 0;
};

template <typename T> using SumK = ReduceCuda<T, reduce::SumReduce>;
template <typename T> using MeanK = ReduceCuda<T, reduce::MeanReduce>;
template <typename T> using ProdK = ReduceCuda<T, reduce::ProdReduce>;
template <typename T> using MaxK = ReduceCuda<T, reduce::MaxReduce>;
template <typename T> using MinK = ReduceCuda<T, reduce::MinReduce>;

DSC_REGISTER_CUDA_FLOATS("", "ReduceSum", SumK);
DSC_REGISTER_CUDA_FLOATS("", "ReduceMean", MeanK);
DSC_REGISTER_CUDA_FLOATS("", "ReduceProd", ProdK);
DSC_REGISTER_CUDA_FLOATS("", "ReduceMax", MaxK);
DSC_REGISTER_CUDA_FLOATS("", "ReduceMin", MinK);
DSC_REGISTER_KERNEL("", "ReduceSum", kCuda, kInt64, MakeFactory<SumK<int64_t>>());
DSC_REGISTER_KERNEL("", "ReduceProd", kCuda, kInt64, MakeFactory<ProdK<int64_t>>());
DSC_REGISTER_KERNEL("", "ReduceMax", kCuda, kInt64, MakeFactory<MaxK<int64_t>>());
DSC_REGISTER_KERNEL("", "ReduceMin", kCuda, kInt64, MakeFactory<MinK<int64_t>>());

}  // namespace
}  // namespace dsc::cuda
