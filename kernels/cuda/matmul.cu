// MatMul (numpy semantics: 1-D promotion, broadcast batch dims) and Gemm on CUDA through cuBLASLt,
// for float32, float16 and bfloat16 and any mix of them per operand, like kernels/cpu/matmul.cc:
// fp32 accumulation, the result rounded once to the output dtype.
//
// Operands of two dtypes are widened to float32 first (cuBLASLt multiplies one dtype); an output
// cuBLASLt cannot write directly (a half output of float32 operands, or a half Gemm output that
// C is added to) is computed in float32 scratch and rounded once.
#include <algorithm>
#include <vector>

#include "kernels/common/matmul_shape.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/gemm.h"

namespace dsc::cuda {
namespace {

// Scratch carved into aligned regions, in the order they are asked for.
class ScratchPlan {
 public:
  size_t Add(size_t bytes) {
    const size_t at = total_;
    total_ += AlignUp(bytes);
    return at;
  }
  size_t total() const { return total_; }

 private:
  size_t total_ = 0;
};

StatusOr<std::vector<int64_t>> Dims(const Value* v) {
  if (!v || !v->type.shape || !IsStatic(*v->type.shape)) return InvalidArgument("MatMul/Gemm needs static shapes");
  std::vector<int64_t> dims;
  for (const Dim& d : *v->type.shape) dims.push_back(d.value);
  return dims;
}

using nn::Product;
using matmul::Arithmetic;
using matmul::BatchIndex;
using matmul::BroadcastBatch;

// Y:(batch, M, N) = A @ B; see kernels/cpu/matmul.cc for the shapes.
class MatMulCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto a, Dims(node.input(0)));
    ASSIGN_OR_RETURN(auto b, Dims(node.input(1)));
    ASSIGN_OR_RETURN(auto y, Dims(node.output(0)));
    if (a.empty() || b.empty()) return InvalidArgument("MatMul inputs must have rank >= 1");
    if (a.size() == 1) a.insert(a.begin(), 1);
    if (b.size() == 1) b.push_back(1);
    da_ = node.input(0)->type.dtype, db_ = node.input(1)->type.dtype, dy_ = node.output(0)->type.dtype;
    for (DType t : {da_, db_, dy_})
      if (t != DType::kFloat32 && t != DType::kFloat16 && t != DType::kBFloat16)
        return Unimplemented("MatMul on ", DTypeName(t), " values (float32, float16 and bfloat16 only)");
    int64_t m = a[a.size() - 2];
    const int64_t k = a.back(), n = b.back();
    if (b[b.size() - 2] != k) return InvalidArgument("inner dims differ: ", k, " vs ", b[b.size() - 2]);
    const std::vector<int64_t> a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
    ASSIGN_OR_RETURN(auto batch, BroadcastBatch(a_batch, b_batch));
    const int64_t nb = Product(batch);
    if (nb * m * n != Product(y)) return InvalidArgument("output has ", Product(y), " elements, expected ", nb * m * n);
    ab_ = da_ == db_ ? da_ : DType::kFloat32;
    direct_ = GemmSupports(ab_, dy_);
    GemmShape s{.a = ab_, .b = ab_, .d = direct_ ? dy_ : DType::kFloat32, .m = m, .n = n, .k = k};
    a_numel_ = Product(a), b_numel_ = Product(b), y_numel_ = nb * m * n;
    if (Product(b_batch) == 1 && Product(a_batch) == nb) {
      s.m = m * nb;  // B shared by every batch (a Linear layer's weight): one GEMM of batch * M rows
    } else {
      std::vector<int64_t>& a_offsets = a_table_.host();
      std::vector<int64_t>& b_offsets = b_table_.host();
      a_offsets = BatchIndex(batch, a_batch);
      b_offsets = BatchIndex(batch, b_batch);
      for (int64_t& o : a_offsets) o *= m * k;
      for (int64_t& o : b_offsets) o *= k * n;
      s.batch = nb, s.stride_d = m * n;
      // A broadcast batch the strides cannot express (both operands broadcast along different
      // dims) is gathered into full-batch copies first.
      gather_ = !(Arithmetic(a_offsets, &s.stride_a) && Arithmetic(b_offsets, &s.stride_b));
      if (gather_) s.stride_a = m * k, s.stride_b = k * n;
    }
    gemm_.Reset(s);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    const GemmShape& s = gemm_.shape();
    if (y_numel_ == 0) return Status::OK();
    const TensorView &a = ctx.input(0), &b = ctx.input(1);
    void* y = ctx.output(0).ptr;
    const int64_t mk = gather_ ? s.batch * s.m * s.k : a_numel_, kn = gather_ ? s.batch * s.k * s.n : b_numel_;
    const bool conv_a = gather_ || da_ != ab_, conv_b = gather_ || db_ != ab_;
    ScratchPlan plan;
    const size_t ea = DTypeSize(ab_);
    const size_t at = conv_a ? plan.Add(static_cast<size_t>(mk) * ea) : 0;
    const size_t bt = conv_b ? plan.Add(static_cast<size_t>(kn) * ea) : 0;
    const size_t yt = direct_ ? 0 : plan.Add(static_cast<size_t>(y_numel_) * sizeof(float));
    char* scratch = nullptr;
    if (plan.total()) {
      ASSIGN_OR_RETURN(void* p, res->Scratch(plan.total()));
      scratch = static_cast<char*>(p);
    }
    const void* ap = a.ptr;
    const void* bp = b.ptr;
    if (gather_) {
      ASSIGN_OR_RETURN(const int64_t* ao, a_table_.Get(res->compute));
      ASSIGN_OR_RETURN(const int64_t* bo, b_table_.Get(res->compute));
      RETURN_IF_ERROR(GatherRowsDevice(res, a.ptr, da_, ao, s.batch, s.m * s.k, scratch + at, ab_));
      RETURN_IF_ERROR(GatherRowsDevice(res, b.ptr, db_, bo, s.batch, s.k * s.n, scratch + bt, ab_));
      ap = scratch + at, bp = scratch + bt;
    } else {
      if (conv_a) {
        RETURN_IF_ERROR(ConvertDevice(res, a.ptr, da_, scratch + at, ab_, a_numel_));
        ap = scratch + at;
      }
      if (conv_b) {
        RETURN_IF_ERROR(ConvertDevice(res, b.ptr, db_, scratch + bt, ab_, b_numel_));
        bp = scratch + bt;
      }
    }
    void* d = direct_ ? y : scratch + yt;
    RETURN_IF_ERROR(gemm_.Run(res, 1.0f, ap, bp, 0.0f, d));
    if (!direct_) RETURN_IF_ERROR(ConvertDevice(res, d, DType::kFloat32, y, dy_, y_numel_));
    return Status::OK();
  }

 private:
  DType da_ = DType::kFloat32, db_ = DType::kFloat32, dy_ = DType::kFloat32, ab_ = DType::kFloat32;
  bool direct_ = true, gather_ = false;
  int64_t a_numel_ = 0, b_numel_ = 0, y_numel_ = 0;
  // Offsets in elements, one per output matrix (gather only).
  DeviceTable<int64_t> a_table_, b_table_;
  Gemm gemm_;
};

// D:(M, N) = C broadcast (row stride rs, column stride cs; 0 along broadcast dims), converted.
__global__ void BroadcastCKernel(const void* c, DType ct, int64_t rs, int64_t cs, void* d, DType dt, int64_t m,
                                 int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m * n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    StoreAny(d, dt, i, LoadAny(c, ct, i / n * rs + i % n * cs));
}

// Gemm: Y:(M, N) = alpha * op(A) @ op(B) + beta * C (C broadcast to (M, N), optional).
class GemmCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto a, Dims(node.input(0)));
    ASSIGN_OR_RETURN(auto b, Dims(node.input(1)));
    ASSIGN_OR_RETURN(auto y, Dims(node.output(0)));
    if (a.size() != 2 || b.size() != 2 || y.size() != 2) return InvalidArgument("Gemm takes 2-D A, B and Y");
    alpha_ = node.GetFloat("alpha", 1.0f);
    beta_ = node.GetFloat("beta", 1.0f);
    const bool ta = node.GetInt("transA", 0) != 0, tb = node.GetInt("transB", 0) != 0;
    const int64_t m = ta ? a[1] : a[0], k = ta ? a[0] : a[1], n = tb ? b[0] : b[1];
    if ((tb ? b[1] : b[0]) != k) return InvalidArgument("inner dims differ");
    if (y[0] != m || y[1] != n) return InvalidArgument("output is not (", m, ", ", n, ")");
    da_ = node.input(0)->type.dtype, db_ = node.input(1)->type.dtype, dy_ = node.output(0)->type.dtype;
    std::vector<DType> dts{da_, db_, dy_};
    if (const Value* c = node.input(2)) {
      has_c_ = true;
      dc_ = c->type.dtype;
      dts.push_back(dc_);
      ASSIGN_OR_RETURN(auto cd, Dims(c));
      if (cd.size() > 2) return InvalidArgument("Gemm's C has rank ", cd.size());
      // Right-aligned against (M, N): a dim of 1 (or a missing one) broadcasts.
      const int64_t cr = cd.size() == 2 ? cd[0] : 1, cc = cd.empty() ? 1 : cd.back();
      if ((cr != 1 && cr != m) || (cc != 1 && cc != n))
        return InvalidArgument("C does not broadcast to (", m, ", ", n, ")");
      c_rs_ = cr == 1 ? 0 : cc;
      c_cs_ = cc == 1 ? 0 : 1;
    }
    for (DType t : dts)
      if (t != DType::kFloat32 && t != DType::kFloat16 && t != DType::kBFloat16)
        return Unimplemented("Gemm on ", DTypeName(t), " values (float32, float16 and bfloat16 only)");
    ab_ = da_ == db_ ? da_ : DType::kFloat32;
    // C is added in float before the one rounding, so a half output with C goes through float32.
    direct_ = dy_ == DType::kFloat32 || (dy_ == ab_ && !has_c_);
    a_numel_ = a[0] * a[1], b_numel_ = b[0] * b[1];
    gemm_.Reset(GemmShape{.a = ab_,
                          .b = ab_,
                          .d = direct_ ? dy_ : DType::kFloat32,
                          .trans_a = ta,
                          .trans_b = tb,
                          .m = m,
                          .n = n,
                          .k = k});
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    const GemmShape& s = gemm_.shape();
    const int64_t mn = s.m * s.n;
    if (mn == 0) return Status::OK();
    const bool use_c = has_c_ && ctx.has_input(2) && beta_ != 0.0f;
    const bool conv_a = da_ != ab_, conv_b = db_ != ab_;
    ScratchPlan plan;
    const size_t ea = DTypeSize(ab_);
    const size_t at = conv_a ? plan.Add(static_cast<size_t>(a_numel_) * ea) : 0;
    const size_t bt = conv_b ? plan.Add(static_cast<size_t>(b_numel_) * ea) : 0;
    const size_t yt = direct_ ? 0 : plan.Add(static_cast<size_t>(mn) * sizeof(float));
    char* scratch = nullptr;
    if (plan.total()) {
      ASSIGN_OR_RETURN(void* p, res->Scratch(plan.total()));
      scratch = static_cast<char*>(p);
    }
    const void* ap = ctx.input(0).ptr;
    const void* bp = ctx.input(1).ptr;
    if (conv_a) {
      RETURN_IF_ERROR(ConvertDevice(res, ap, da_, scratch + at, ab_, a_numel_));
      ap = scratch + at;
    }
    if (conv_b) {
      RETURN_IF_ERROR(ConvertDevice(res, bp, db_, scratch + bt, ab_, b_numel_));
      bp = scratch + bt;
    }
    void* y = ctx.output(0).ptr;
    void* d = direct_ ? y : scratch + yt;
    const DType dd = direct_ ? dy_ : DType::kFloat32;
    if (use_c) {  // D = C, then the GEMM's beta
      BroadcastCKernel<<<GridFor(*res, mn), kThreads, 0, res->compute>>>(ctx.input(2).ptr, dc_, c_rs_, c_cs_, d, dd,
                                                                         s.m, s.n);
      DSC_CUDA_CHECK_LAUNCH();
    }
    RETURN_IF_ERROR(gemm_.Run(res, alpha_, ap, bp, use_c ? beta_ : 0.0f, d));
    if (!direct_) RETURN_IF_ERROR(ConvertDevice(res, d, DType::kFloat32, y, dy_, mn));
    return Status::OK();
  }

 private:
  float alpha_ = 1, beta_ = 1;
  bool has_c_ = false, direct_ = true;
  DType da_ = DType::kFloat32, db_ = DType::kFloat32, dc_ = DType::kFloat32, dy_ = DType::kFloat32,
        ab_ = DType::kFloat32;
  int64_t c_rs_ = 0, c_cs_ = 0, a_numel_ = 0, b_numel_ = 0;
  Gemm gemm_;
};

DSC_REGISTER_KERNEL("", "MatMul", kCuda, kFloat32, MakeFactory<MatMulCuda>());
DSC_REGISTER_KERNEL("", "MatMul", kCuda, kFloat16, MakeFactory<MatMulCuda>());
DSC_REGISTER_KERNEL("", "MatMul", kCuda, kBFloat16, MakeFactory<MatMulCuda>());
DSC_REGISTER_KERNEL("", "Gemm", kCuda, kFloat32, MakeFactory<GemmCuda>());
DSC_REGISTER_KERNEL("", "Gemm", kCuda, kFloat16, MakeFactory<GemmCuda>());
DSC_REGISTER_KERNEL("", "Gemm", kCuda, kBFloat16, MakeFactory<GemmCuda>());

}  // namespace
}  // namespace dsc::cuda
