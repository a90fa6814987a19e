// CUDA twins of kernels/cpu/movement.cc: Reshape/Flatten/Squeeze/Unsqueeze/Identity (and
// ai.dscompile.StopGradient), Transpose, Concat, Split, Expand, Tile and Pad (constant mode), for
// every movement dtype (bytes only).
#include <algorithm>
#include <cstring>
#include <numeric>

#include "ir/dsc_ops.h"
#include "kernels/common/transpose_math.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

using cpu::ContiguousStrides;
using cpu::NormalizeAxis;
using cpu::Product;
using cpu::StaticDims;

// Reshape, Flatten, Squeeze, Unsqueeze, Identity: the same bytes under new static dims; nothing to
// do when the planner gave input and output one buffer.
class CopyCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    if (Product(x) != Product(y)) return InvalidArgument("input has ", Product(x), " elements, output ", Product(y));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    if (x.ptr == y.ptr || x.nbytes() == 0) return Status::OK();
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    DSC_CUDA_CHECK(cudaMemcpyAsync(y.ptr, x.ptr, x.nbytes(), cudaMemcpyDeviceToDevice, r->compute));
    return Status::OK();
  }
};

constexpr int kTile = 32, kTileRows = 8;

// X:(B, R, C) -> Y:(B, C, R) through a shared-memory tile, so that both the reads of X and the
// writes of Y are coalesced. Block (32, 8); grid (C tiles, R tiles, B), the last two grid-strided
// past the 65535 limit of gridDim.y/z.
template <typename W>
__global__ void Transpose2DKernel(const W* __restrict__ x, W* __restrict__ y, int64_t batch, int64_t rows,
                                  int64_t cols) {
  __shared__ W tile[kTile][kTile + 1];  // +1: the column reads hit 32 different banks
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z) {
    const W* xb = x + b * rows * cols;
    W* yb = y + b * rows * cols;
    for (int64_t rt = blockIdx.y; rt < row_tiles; rt += gridDim.y) {
      const int64_t r0 = rt * kTile;
      for (int j = ty; j < kTile; j += kTileRows) {
        const int64_t r = r0 + j, c = c0 + tx;
        if (r < rows && c < cols) tile[j][tx] = xb[r * cols + c];
      }
      __syncthreads();
      for (int j = ty; j < kTile; j += kTileRows) {
        const int64_t c = c0 + j, r = r0 + tx;
        if (r < rows && c < cols) yb[c * rows + r] = tile[tx][j];
      }
      __syncthreads();  // the tile is rewritten by the next iteration
    }
  }
}

// Transpose on the dims MergeTranspose leaves (kernels/common/transpose_math.h): a copy, the tiled
// batched 2-D transpose when the last dim moves, or a strided copy otherwise (which covers
// [0,2,1,3]: its merged last dim stays contiguous, so reads and writes coalesce along it).
class TransposeCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    esize_ = DTypeSize(node.input(0)->type.dtype);
    ASSIGN_OR_RETURN(t_, MergeTranspose(x, node.GetInts("perm")));
    numel_ = Product(x);
    if (t_.perm.size() > 1 && !t_.batched_2d) {
      const std::vector<int64_t> in_strides = ContiguousStrides(t_.dims);
      std::vector<int64_t> out_dims, xs;
      for (int64_t c : t_.perm) {
        out_dims.push_back(t_.dims[static_cast<size_t>(c)]);
        xs.push_back(in_strides[static_cast<size_t>(c)]);
      }
      ASSIGN_OR_RETURN(map_, MakeStridedMap(out_dims, xs, ContiguousStrides(out_dims), numel_, numel_));
    }
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    if (numel_ == 0) return Status::OK();
    const void* x = ctx.input(0).ptr;
    void* y = ctx.output(0).ptr;
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (t_.perm.size() <= 1) {
      DSC_CUDA_CHECK(cudaMemcpyAsync(y, x, static_cast<size_t>(numel_) * esize_, cudaMemcpyDeviceToDevice, r->compute));
      return Status::OK();
    }
    if (!t_.batched_2d) return DispatchWords(esize_, [&](auto w) { return StridedCopy<decltype(w)>(ctx, map_, x, y); });
    return DispatchWords(esize_, [&](auto w) -> Status {
      using W = decltype(w);
      const int64_t col_tiles = (t_.cols + kTile - 1) / kTile, row_tiles = (t_.rows + kTile - 1) / kTile;
      if (col_tiles > 0x7fffffff) return Unimplemented("a transpose with ", t_.cols, " columns");
      const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_tiles < 65535 ? row_tiles : 65535),
                      static_cast<unsigned>(t_.batch < 65535 ? t_.batch : 65535));
      Transpose2DKernel<W><<<grid, dim3(kTile, kTileRows), 0, r->compute>>>(static_cast<const W*>(x), static_cast<W*>(y),
                                                                           t_.batch, t_.rows, t_.cols);
      DSC_CUDA_CHECK_LAUNCH();
      return Status::OK();
    });
  }

 private:
  size_t esize_ = 4;
  int64_t numel_ = 0;
  MergedTranspose t_;
  StridedMap map_;
};

// Concat and Split: the whole tensor viewed as (outer, row_bytes) and part k as (outer,
// chunk_bytes[k]), its chunk starting at byte at[k] of each row: one 2-D copy per part.
class AxisChunksCuda : public OpKernel {
 protected:
  // `whole` is Concat's output or Split's input; `parts` the others. Returns the parts' summed
  // extent along the axis and sets whole_axis_len to the whole's.
  StatusOr<int64_t> ReadChunks(const Node& node, const Value* whole, const std::vector<Value*>& parts,
                               const char* part_kind, int64_t* whole_axis_len) {
    ASSIGN_OR_RETURN(auto w, StaticDims(whole));
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node.GetInt("axis", 0), static_cast<int64_t>(w.size())));
    const size_t a = static_cast<size_t>(axis);
    const size_t esize = DTypeSize(whole->type.dtype);
    outer_ = Product(w, 0, a);
    const int64_t inner = Product(w, a + 1);
    int64_t sum = 0;
    size_t at = 0;
    for (const Value* v : parts) {
      ASSIGN_OR_RETURN(auto d, StaticDims(v));
      if (d.size() != w.size()) return InvalidArgument(part_kind, " '", v->name(), "' has rank ", d.size());
      sum += d[a];
      chunk_bytes_.push_back(static_cast<size_t>(d[a] * inner) * esize);
      at_.push_back(at);
      at += chunk_bytes_.back();
    }
    row_bytes_ = at;
    *whole_axis_len = w[a];
    if (row_bytes_ != static_cast<size_t>(w[a] * inner) * esize)
      return InvalidArgument(part_kind, " sizes along axis ", axis, " add up to ", sum, ", the whole has ", w[a]);
    return sum;
  }

  // Copies part k between the whole (`whole`, pitch row_bytes_) and the part (pitch its chunk).
  Status CopyPart(Resources* r, size_t k, void* dst, const void* src, bool to_whole) const {
    const size_t bytes = chunk_bytes_[k];
    if (bytes == 0 || outer_ == 0) return Status::OK();
    uint8_t* d = static_cast<uint8_t*>(dst) + (to_whole ? at_[k] : 0);
    const uint8_t* s = static_cast<const uint8_t*>(src) + (to_whole ? 0 : at_[k]);
    const size_t dpitch = to_whole ? row_bytes_ : bytes, spitch = to_whole ? bytes : row_bytes_;
    if (outer_ == 1 || bytes == row_bytes_) {
      DSC_CUDA_CHECK(cudaMemcpyAsync(d, s, bytes * static_cast<size_t>(outer_), cudaMemcpyDeviceToDevice, r->compute));
    } else if (row_bytes_ <= 0x7fffffffu) {  // cudaMemcpy2D's pitch limit
      DSC_CUDA_CHECK(cudaMemcpy2DAsync(d, dpitch, s, spitch, bytes, static_cast<size_t>(outer_),
                                       cudaMemcpyDeviceToDevice, r->compute));
    } else {
      for (int64_t o = 0; o < outer_; ++o)
        DSC_CUDA_CHECK(cudaMemcpyAsync(d + static_cast<size_t>(o) * dpitch, s + static_cast<size_t>(o) * spitch, bytes,
                                       cudaMemcpyDeviceToDevice, r->compute));
    }
    return Status::OK();
  }

  int64_t outer_ = 1;
  std::vector<size_t> chunk_bytes_, at_;
  size_t row_bytes_ = 0;
};

class ConcatCuda : public AxisChunksCuda {
 public:
  Status Init(const Node& node) {
    int64_t whole = 0;
    return ReadChunks(node, node.output(0), node.inputs(), "input", &whole).status();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    for (size_t k = 0; k < chunk_bytes_.size(); ++k)
      RETURN_IF_ERROR(CopyPart(r, k, ctx.output(0).ptr, ctx.input(k).ptr, /*to_whole=*/true));
    return Status::OK();
  }
};

// The split sizes come from the static output shapes, as on the CPU.
class SplitCuda : public AxisChunksCuda {
 public:
  Status Init(const Node& node) {
    int64_t whole = 0;
    return ReadChunks(node, node.input(0), node.outputs(), "output", &whole).status();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    for (size_t k = 0; k < chunk_bytes_.size(); ++k)
      if (ctx.has_output(k)) RETURN_IF_ERROR(CopyPart(r, k, ctx.output(k).ptr, ctx.input(0).ptr, /*to_whole=*/false));
    return Status::OK();
  }
};

// Expand: X broadcast to Y's static shape: a strided copy reading X with stride 0 on broadcast dims.
class ExpandCuda : public MappedCopyCuda {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    esize_ = DTypeSize(node.input(0)->type.dtype);
    if (x.size() > y.size()) return InvalidArgument("input of rank ", x.size(), " cannot broadcast to rank ", y.size());
    const std::vector<int64_t> xstr = ContiguousStrides(x);
    std::vector<int64_t> xs(y.size(), 0);
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t o = y.size() - x.size() + i;
      if (x[i] == y[o]) xs[o] = y[o] == 1 ? 0 : xstr[i];
      else if (x[i] != 1) return InvalidArgument("dim ", x[i], " cannot broadcast to ", y[o]);
    }
    ASSIGN_OR_RETURN(map_, MakeStridedMap(y, xs, ContiguousStrides(y), Product(x), Product(y)));
    return Status::OK();
  }
};

// Tile: Y viewed as (rep_0, x_0, rep_1, x_1, ...), which reads X with stride 0 along the reps.
class TileCuda : public MappedCopyCuda {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    esize_ = DTypeSize(node.input(0)->type.dtype);
    if (x.size() != y.size()) return InvalidArgument("output rank ", y.size(), " differs from input rank ", x.size());
    for (size_t d = 0; d < x.size(); ++d)
      if (x[d] == 0 ? y[d] != 0 : y[d] % x[d] != 0)
        return InvalidArgument("output dim ", y[d], " is not a multiple of input dim ", x[d]);
    const std::vector<int64_t> xstr = ContiguousStrides(x), ystr = ContiguousStrides(y);
    std::vector<int64_t> dims, xs, ys;
    for (size_t d = 0; d < x.size(); ++d) {
      const int64_t reps = x[d] == 0 ? 0 : y[d] / x[d];
      dims.insert(dims.end(), {reps, x[d]});
      xs.insert(xs.end(), {0, xstr[d]});
      ys.insert(ys.end(), {x[d] * ystr[d], ystr[d]});
    }
    ASSIGN_OR_RETURN(map_, MakeStridedMap(dims, xs, ys, Product(x), Product(y)));
    return Status::OK();
  }
};

// Pad, constant mode: Y filled with the value, then the part of X that survives (negative pads
// crop) copied in. Pads, axes and the value must be constants: they are read here, at Init.
class PadCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    const std::string mode = node.GetString("mode", "constant");
    if (mode != "constant") return Unimplemented("Pad mode '", mode, "' (only 'constant' is supported)");
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    esize_ = DTypeSize(node.input(0)->type.dtype);
    y_numel_ = Product(y);
    std::vector<int64_t> pads;
    if (const Value* p = node.input(1)) {
      if (!p->is_initializer()) return Unimplemented("Pad with non-constant pads on CUDA");
      pads = p->initializer().ToInt64Vector();
    } else {
      pads = node.GetInts("pads");  // opset < 11
    }
    if (const Value* c = node.input(2)) {
      if (!c->is_initializer()) return Unimplemented("Pad with a non-constant value on CUDA");
      if (c->initializer().numel() > 0) std::memcpy(&fill_, c->initializer().raw(), esize_);
    }
    const size_t rank = x.size();
    std::vector<int64_t> axes;
    if (const Value* a = node.input(3)) {  // opset 18 axes
      if (!a->is_initializer()) return Unimplemented("Pad with non-constant axes");
      for (int64_t ax : a->initializer().ToInt64Vector()) {
        ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(ax, static_cast<int64_t>(rank)));
        axes.push_back(n);
      }
    } else {
      for (size_t d = 0; d < rank; ++d) axes.push_back(static_cast<int64_t>(d));
    }
    if (pads.size() != 2 * axes.size()) return InvalidArgument("pads has ", pads.size(), " values for ", axes.size(), " axes");
    std::vector<int64_t> begin(rank, 0), end(rank, 0);
    for (size_t i = 0; i < axes.size(); ++i) {
      begin[static_cast<size_t>(axes[i])] = pads[i];
      end[static_cast<size_t>(axes[i])] = pads[i + axes.size()];
    }
    const std::vector<int64_t> ys = ContiguousStrides(y), xs = ContiguousStrides(x);
    std::vector<int64_t> box(rank);
    int64_t y_base = 0, x_base = 0;
    for (size_t d = 0; d < rank; ++d) {
      if (x[d] + begin[d] + end[d] != y[d])
        return InvalidArgument("pads give dim ", d, " size ", x[d] + begin[d] + end[d], ", output has ", y[d]);
      const int64_t lo = std::max<int64_t>(0, begin[d]), hi = std::min(y[d], x[d] + begin[d]);
      box[d] = std::max<int64_t>(0, hi - lo);
      y_base += lo * ys[d];
      x_base += (lo - begin[d]) * xs[d];
    }
    ASSIGN_OR_RETURN(map_, MakeStridedMap(box, xs, ys, Product(x), y_numel_, x_base, y_base));
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    return DispatchWords(esize_, [&](auto w) { return Run<decltype(w)>(ctx); });
  }

  // Public: nvcc refuses extended lambdas in private member functions.
  template <typename W>
  Status Run(KernelContext& ctx) {
    W fill;
    std::memcpy(&fill, &fill_, sizeof(W));
    W* y = ctx.output(0).data<W>();
    RETURN_IF_ERROR(LaunchMap(ctx, y_numel_, [=] __device__(int64_t i) { y[i] = fill; }));
    return StridedCopy<W>(ctx, map_, ctx.input(0).ptr, y);
  }

 private:
  size_t esize_ = 4;
  uint64_t fill_ = 0;  // the value's bytes (the first esize_ of them)
  int64_t y_numel_ = 0;
  StridedMap map_;
};

[[maybe_unused]] const bool kRegistered = [] {
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
    RegisterCudaMovement("", op, MakeFactory<CopyCuda>());
  RegisterCudaMovement(kDscDomain, ops::kStopGradient, MakeFactory<CopyCuda>());
  RegisterCudaMovement("", "Transpose", MakeFactory<TransposeCuda>());
  RegisterCudaMovement("", "Concat", MakeFactory<ConcatCuda>());
  RegisterCudaMovement("", "Split", MakeFactory<SplitCuda>());
  RegisterCudaMovement("", "Expand", MakeFactory<ExpandCuda>());
  RegisterCudaMovement("", "Tile", MakeFactory<TileCuda>());
  RegisterCudaMovement("", "Pad", MakeFactory<PadCuda>());
  return true;
}();

}  // namespace
}  // namespace dsc::cuda
