// Data-movement kernels that only copy bytes: Reshape/Flatten/Squeeze/Unsqueeze/Identity (and
// ai.dscompile.StopGradient), Transpose, Concat, Split, Expand, Tile and Pad (constant mode).
// Registered for every dtype.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "ir/dsc_ops.h"
#include "kernels/common/transpose_math.h"
#include "kernels/cpu/broadcast.h"

namespace dsc::cpu {
namespace {

// Reshape, Flatten, Squeeze, Unsqueeze, Identity: same bytes, new static dims. The shape/axes
// inputs are not read: the output's static shape already says everything.
class CopyKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    if (Product(x) != Product(y))
      return InvalidArgument("input has ", Product(x), " elements, output ", Product(y));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    if (x.ptr != y.ptr && x.nbytes() > 0) std::memcpy(y.ptr, x.ptr, x.nbytes());
    return Status::OK();
  }
};

// Transpose, on the dims MergeTranspose leaves (kernels/common/transpose_math.h): a copy, a batched
// 2-D transpose (B, R, C) -> (B, C, R), or rows read with the permuted strides.
class TransposeKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    element_size_ = DTypeSize(node.input(0)->type.dtype);
    ASSIGN_OR_RETURN(MergedTranspose t, MergeTranspose(x, node.GetInts("perm")));
    numel_ = Product(x);
    if (t.perm.size() <= 1) {
      kind_ = Kind::kCopy;
    } else if (t.batched_2d) {
      kind_ = Kind::kBatched2D;
      batch_ = t.batch;
      rows_ = t.rows;
      cols_ = t.cols;
    } else {
      kind_ = Kind::kRows;
      std::vector<int64_t> in_strides = ContiguousStrides(t.dims), out_dims, strides;
      for (int64_t c : t.perm) {
        out_dims.push_back(t.dims[static_cast<size_t>(c)]);
        strides.push_back(in_strides[static_cast<size_t>(c)]);
      }
      plan_ = StridedPlan(out_dims, {strides});
    }
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    if (kind_ == Kind::kCopy) {
      if (numel_ > 0) std::memcpy(y.ptr, x.ptr, x.nbytes());
      return Status::OK();
    }
    DispatchByElementSize(element_size_, [&](auto word) {
      using W = decltype(word);
      if (kind_ == Kind::kBatched2D) Transpose2D(x.data<W>(), y.data<W>());
      else TransposeRows(x.data<W>(), y.data<W>());
    });
    return Status::OK();
  }

 private:
  enum class Kind { kCopy, kBatched2D, kRows };

  // X:(B, R, C) -> Y:(B, C, R), in square tiles so reads and writes both stay in cache.
  template <typename W>
  void Transpose2D(const W* x, W* y) const {
    constexpr int64_t kTile = 32;
    const int64_t R = rows_, C = cols_, tr = (R + kTile - 1) / kTile, tc = (C + kTile - 1) / kTile;
#pragma omp parallel for if (numel_ >= kParallelMin) schedule(static)
    for (int64_t t = 0; t < batch_ * tr * tc; ++t) {
      const int64_t b = t / (tr * tc), r0 = (t / tc) % tr * kTile, c0 = t % tc * kTile;
      const W* xb = x + b * R * C;
      W* yb = y + b * R * C;
      for (int64_t r = r0; r < std::min(r0 + kTile, R); ++r)
        for (int64_t c = c0; c < std::min(c0 + kTile, C); ++c) yb[c * R + r] = xb[r * C + c];
    }
  }

  // Any other permutation: one output row at a time, reading X with the permuted stride.
  template <typename W>
  void TransposeRows(const W* x, W* y) const {
    const int64_t n = plan_.inner(), s = plan_.inner_stride(0);
    ForEachRow(plan_, [&](int64_t o, const int64_t* off) {
      const W* px = x + off[0];
      if (s == 1) std::copy(px, px + n, y + o);
      else for (int64_t i = 0; i < n; ++i) y[o + i] = px[i * s];
    });
  }

  size_t element_size_ = 4;
  int64_t numel_ = 0;
  Kind kind_ = Kind::kCopy;
  int64_t batch_ = 1, rows_ = 1, cols_ = 1;
  BroadcastPlan plan_;
};

// Concat and Split: the whole tensor (Concat's Y, Split's X) viewed as (outer, row_bytes), and part
// k (Concat's Xk, Split's Yk) as (outer, chunk_bytes[k]) = (outer, part_k[axis] * inner * esize);
// in each row, part k's chunk starts where the chunks of parts 0..k-1 end.
class AxisChunksKernel : public OpKernel {
 protected:
  struct Axis {
    size_t axis = 0;
    int64_t inner = 1;      // elements after `axis`
    size_t esize = 0;       // bytes per element
    int64_t parts_sum = 0;  // sum of the parts' extents along `axis`
  };

  // Reads axis, outer_, chunk_bytes_ and row_bytes_ (the sum of the chunks) from the whole's and
  // the parts' static dims; `part_kind` ("input"/"output") names a part of the wrong rank.
  StatusOr<Axis> ReadChunks(const Node& node, const Value* whole, const std::vector<Value*>& parts,
                            const char* part_kind) {
    ASSIGN_OR_RETURN(auto w, StaticDims(whole));
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node.GetInt("axis", 0), static_cast<int64_t>(w.size())));
    Axis a;
    a.axis = static_cast<size_t>(axis);
    a.esize = DTypeSize(whole->type.dtype);
    outer_ = Product(w, 0, a.axis);
    a.inner = Product(w, a.axis + 1);
    for (const Value* v : parts) {
      ASSIGN_OR_RETURN(auto d, StaticDims(v));
      if (d.size() != w.size()) return InvalidArgument(part_kind, " '", v->name(), "' has rank ", d.size());
      a.parts_sum += d[a.axis];
      chunk_bytes_.push_back(static_cast<size_t>(d[a.axis] * a.inner) * a.esize);
    }
    row_bytes_ = std::accumulate(chunk_bytes_.begin(), chunk_bytes_.end(), size_t{0});
    return a;
  }

  // Calls copy(k, at, part_at, bytes) for each non-empty chunk of each row: `at` is its byte offset in
  // the whole, `part_at` in part k. Rows run in parallel.
  template <typename Fn>
  void ForEachChunk(Fn&& copy) const {
#pragma omp parallel for if (static_cast<int64_t>(row_bytes_) * outer_ >= 4 * kParallelMin) schedule(static)
    for (int64_t o = 0; o < outer_; ++o) {
      size_t at = static_cast<size_t>(o) * row_bytes_;
      for (size_t k = 0; k < chunk_bytes_.size(); ++k) {
        if (chunk_bytes_[k] == 0) continue;
        copy(k, at, static_cast<size_t>(o) * chunk_bytes_[k], chunk_bytes_[k]);
        at += chunk_bytes_[k];
      }
    }
  }

  int64_t outer_ = 1;
  std::vector<size_t> chunk_bytes_;
  size_t row_bytes_ = 0;
};

// Concat along `axis`: Y viewed as (outer, sum_k Xk[axis] * inner); each Xk fills its slice.
class ConcatKernel : public AxisChunksKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(const Axis a, ReadChunks(node, node.output(0), node.inputs(), "input"));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    if (row_bytes_ != static_cast<size_t>(y[a.axis] * a.inner) * a.esize)
      return InvalidArgument("input sizes along axis ", a.axis, " do not add up to the output's");
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    uint8_t* y = ctx.output(0).data<uint8_t>();
    ForEachChunk([&](size_t k, size_t at, size_t part_at, size_t bytes) {
      std::memcpy(y + at, ctx.input(k).data<uint8_t>() + part_at, bytes);
    });
    return Status::OK();
  }
};

// Split along `axis`: the inverse of Concat. The sizes come from the static output shapes, so
// the `split` input (opset 13) and `num_outputs` need not be read.
class SplitKernel : public AxisChunksKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(const Axis a, ReadChunks(node, node.input(0), node.outputs(), "output"));
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    if (a.parts_sum != x[a.axis])
      return InvalidArgument("output sizes along axis ", a.axis, " add up to ", a.parts_sum, ", input has ",
                             x[a.axis]);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const uint8_t* x = ctx.input(0).data<uint8_t>();
    ForEachChunk([&](size_t k, size_t at, size_t part_at, size_t bytes) {
      if (ctx.has_output(k)) std::memcpy(ctx.output(k).data<uint8_t>() + part_at, x + at, bytes);
    });
    return Status::OK();
  }
};

// Expand: X broadcast to Y's static shape (the `shape` input is implied by it).
class ExpandKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    element_size_ = DTypeSize(node.input(0)->type.dtype);
    ASSIGN_OR_RETURN(plan_, MakeBroadcastPlan(y, {x}));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    DispatchByElementSize(element_size_, [&](auto word) {
      using W = decltype(word);
      BroadcastCopy(plan_, ctx.input(0).data<W>(), ctx.output(0).data<W>());
    });
    return Status::OK();
  }

 private:
  size_t element_size_ = 4;
  BroadcastPlan plan_;
};

// Tile: Y[i] = X[i mod dims(X)]; the repeats are Y's dims over X's, so only shapes are read.
class TileKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(x_, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(y_, StaticDims(node.output(0)));
    element_size_ = DTypeSize(node.input(0)->type.dtype);
    if (x_.size() != y_.size()) return InvalidArgument("output rank ", y_.size(), " differs from input rank ", x_.size());
    for (size_t d = 0; d < x_.size(); ++d)
      if (x_[d] == 0 ? y_[d] != 0 : y_[d] % x_[d] != 0)
        return InvalidArgument("output dim ", y_[d], " is not a multiple of input dim ", x_[d]);
    if (x_.empty()) x_ = y_ = {1};
    x_strides_ = ContiguousStrides(x_);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    if (Product(y_) == 0) return Status::OK();
    DispatchByElementSize(element_size_, [&](auto word) {
      using W = decltype(word);
      const W* x = ctx.input(0).data<W>();
      W* y = ctx.output(0).data<W>();
      const size_t last = y_.size() - 1;
      const int64_t x_row = x_[last], y_row = y_[last], rows = Product(y_) / y_row;
#pragma omp parallel for if (Product(y_) >= kParallelMin) schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        int64_t off = 0, rest = r;
        for (size_t d = last; d-- > 0;) {
          off += (rest % y_[d]) % x_[d] * x_strides_[d];
          rest /= y_[d];
        }
        for (int64_t j = 0; j < y_row; j += x_row) std::copy(x + off, x + off + x_row, y + r * y_row + j);
      }
    });
    return Status::OK();
  }

 private:
  std::vector<int64_t> x_, y_, x_strides_;
  size_t element_size_ = 4;
};

// Pad, constant mode: Y is filled with the constant, then the part of X that survives (pads may
// be negative, which crops) is copied in, one row of the last dim at a time.
class PadKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    const std::string mode = node.GetString("mode", "constant");
    if (mode != "constant") return Unimplemented("Pad mode '", mode, "' (only 'constant' is supported on CPU)");
    ASSIGN_OR_RETURN(x_, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(y_, StaticDims(node.output(0)));
    element_size_ = DTypeSize(node.input(0)->type.dtype);
    constant_.assign(element_size_, 0);
    if (node.input(1)) {
      pads_.Init(node, 1);
    } else {
      pads_attr_ = node.GetInts("pads");  // opset < 11
    }
    if (const Value* c = node.input(2)) {
      if (c->is_initializer()) {
        if (c->initializer().numel() > 0) std::memcpy(constant_.data(), c->initializer().raw(), element_size_);
      } else {
        runtime_constant_ = true;
      }
    }
    if (const Value* a = node.input(3)) {  // opset 18 axes
      if (!a->is_initializer()) return Unimplemented("Pad with non-constant axes");
      for (int64_t ax : a->initializer().ToInt64Vector()) {
        ASSIGN_OR_RETURN(int64_t n, NormalizeAxis(ax, static_cast<int64_t>(x_.size())));
        axes_.push_back(n);
      }
    }
    if (!pads_.present() || pads_.constant()) {
      ASSIGN_OR_RETURN(plan_, MakePlan(pads_.present() ? pads_.constant_values() : pads_attr_));
    }
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    if (pads_.present() && !pads_.constant()) {
      ASSIGN_OR_RETURN(plan_, MakePlan(pads_.Get(ctx)));
    }
    std::vector<uint8_t> value = constant_;
    if (runtime_constant_ && ctx.has_input(2) && ctx.input(2).numel() > 0)
      std::memcpy(value.data(), ctx.input(2).ptr, element_size_);
    DispatchByElementSize(element_size_, [&](auto word) {
      using W = decltype(word);
      W fill;
      std::memcpy(&fill, value.data(), sizeof(W));
      const W* x = ctx.input(0).data<W>();
      W* y = ctx.output(0).data<W>();
      std::fill(y, y + Product(y_), fill);
      const int64_t n = plan_.inner();
      ForEachRow(plan_, [&](int64_t, const int64_t* off) {
        std::copy(x + x_base_ + off[1], x + x_base_ + off[1] + n, y + y_base_ + off[0]);
      });
    });
    return Status::OK();
  }

 private:
  // Plan over the copied box: strides[0] walks Y, strides[1] walks X, from y_base_/x_base_.
  StatusOr<BroadcastPlan> MakePlan(const std::vector<int64_t>& pads_in) {
    const size_t rank = x_.size();
    std::vector<int64_t> begin(rank, 0), end(rank, 0);
    std::vector<int64_t> axes = axes_;
    if (axes.empty())
      for (size_t d = 0; d < rank; ++d) axes.push_back(static_cast<int64_t>(d));
    if (pads_in.size() != 2 * axes.size()) return InvalidArgument("pads has ", pads_in.size(), " values for ", axes.size(), " axes");
    for (size_t i = 0; i < axes.size(); ++i) {
      begin[static_cast<size_t>(axes[i])] = pads_in[i];
      end[static_cast<size_t>(axes[i])] = pads_in[i + axes.size()];
    }
    std::vector<int64_t> ys = ContiguousStrides(y_), xs = ContiguousStrides(x_), box(rank);
    y_base_ = x_base_ = 0;
    for (size_t d = 0; d < rank; ++d) {
      if (x_[d] + begin[d] + end[d] != y_[d])
        return InvalidArgument("pads give dim ", d, " size ", x_[d] + begin[d] + end[d], ", output has ", y_[d]);
      const int64_t lo = std::max<int64_t>(0, begin[d]), hi = std::min(y_[d], x_[d] + begin[d]);
      box[d] = std::max<int64_t>(0, hi - lo);
      y_base_ += lo * ys[d];
      x_base_ += (lo - begin[d]) * xs[d];
    }
    std::vector<std::vector<int64_t>> strides(2);
    strides[0] = std::move(ys);
    strides[1] = std::move(xs);
    return StridedPlan(std::move(box), std::move(strides));
  }

  std::vector<int64_t> x_, y_, pads_attr_, axes_;
  size_t element_size_ = 4;
  IntsInput pads_;
  std::vector<uint8_t> constant_;
  bool runtime_constant_ = false;
  int64_t y_base_ = 0, x_base_ = 0;
  BroadcastPlan plan_;
};

[[maybe_unused]] const bool kRegistered = [] {
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
    RegisterForMovementDTypes(op, MakeFactory<CopyKernel>());
  RegisterForMovementDTypes(ops::kStopGradient, MakeFactory<CopyKernel>(), kDscDomain);
  RegisterForMovementDTypes("Transpose", MakeFactory<TransposeKernel>());
  RegisterForMovementDTypes("Concat", MakeFactory<ConcatKernel>());
  RegisterForMovementDTypes("Split", MakeFactory<SplitKernel>());
  RegisterForMovementDTypes("Expand", MakeFactory<ExpandKernel>());
  RegisterForMovementDTypes("Tile", MakeFactory<TileKernel>());
  RegisterForMovementDTypes("Pad", MakeFactory<PadKernel>());
  return true;
}();

}  // namespace
}  // namespace dsc::cpu
