// FusedMatMul (ir/dsc_ops.h) on CUDA: numpy MatMul with the operands read transposed by
// cuBLASLt's transpose flags, for float32, float16 and bfloat16 (A, B and Y of one dtype, as the
// fuse pass makes it); fp32 accumulation, a half result rounded once, as kernels/cuda/matmul.cu.
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/matmul_shape.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/gemm.h"

namespace dsc::cuda {
namespace {

class FusedMatMulCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    dt_ = node.input(0)->type.dtype;
    dy_ = node.output(0)->type.dtype;
    if (node.input(1)->type.dtype != dt_ || dy_ != dt_)
      return Unimplemented("FusedMatMul with operands and result of different dtypes (the fuse pass makes one dtype)");
    if (dt_ != DType::kFloat32 && dt_ != DType::kFloat16 && dt_ != DType::kBFloat16)
      return Unimplemented("FusedMatMul on ", DTypeName(dt_), " values (float32, float16 and bfloat16 only)");
    ASSIGN_OR_RETURN(matmul::FusedShape fs, matmul::ResolveFused(node));
    y_numel_ = fs.batch() * fs.m * fs.n;
    direct_ = GemmSupports(dt_, dy_);
    GemmShape s{.a = dt_,
                .b = dt_,
                .d = direct_ ? dy_ : DType::kFloat32,
                .trans_a = fs.trans_a,
                .trans_b = fs.trans_b,
                .m = fs.m,
                .n = fs.n,
                .k = fs.k};
    if (fs.batch() > 1) {
      s.batch = fs.batch(), s.stride_d = fs.m * fs.n;
      // A broadcast batch the strides cannot express is gathered into full-batch copies first.
      gather_ = !(matmul::Arithmetic(fs.a_offsets, &s.stride_a) && matmul::Arithmetic(fs.b_offsets, &s.stride_b));
      if (gather_) {
        s.stride_a = fs.m * fs.k, s.stride_b = fs.k * fs.n;
        a_table_.host() = fs.a_offsets;
        b_table_.host() = fs.b_offsets;
      }
    }
    gemm_.Reset(s);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    const GemmShape& s = gemm_.shape();
    if (y_numel_ == 0) return Status::OK();
    const size_t e = DTypeSize(dt_);
    const size_t a_bytes = gather_ ? AlignUp(static_cast<size_t>(s.batch * s.m * s.k) * e) : 0;
    const size_t b_bytes = gather_ ? AlignUp(static_cast<size_t>(s.batch * s.k * s.n) * e) : 0;
    const size_t y_bytes = direct_ ? 0 : AlignUp(static_cast<size_t>(y_numel_) * sizeof(float));
    char* scratch = nullptr;
    if (a_bytes + b_bytes + y_bytes) {
      ASSIGN_OR_RETURN(void* p, res->Scratch(a_bytes + b_bytes + y_bytes));
      scratch = static_cast<char*>(p);
    }
    const void* ap = ctx.input(0).ptr;
    const void* bp = ctx.input(1).ptr;
    if (gather_) {
      ASSIGN_OR_RETURN(const int64_t* ao, a_table_.Get(res->compute));
      ASSIGN_OR_RETURN(const int64_t* bo, b_table_.Get(res->compute));
      RETURN_IF_ERROR(GatherRowsDevice(res, ap, dt_, ao, s.batch, s.m * s.k, scratch, dt_));
      RETURN_IF_ERROR(GatherRowsDevice(res, bp, dt_, bo, s.batch, s.k * s.n, scratch + a_bytes, dt_));
      ap = scratch, bp = scratch + a_bytes;
    }
    void* y = ctx.output(0).ptr;
    void* d = direct_ ? y : scratch + a_bytes + b_bytes;
    RETURN_IF_ERROR(gemm_.Run(res, 1.0f, ap, bp, 0.0f, d));
    if (!direct_) RETURN_IF_ERROR(ConvertDevice(res, d, DType::kFloat32, y, dy_, y_numel_));
    return Status::OK();
  }

 private:
  DType dt_ = DType::kFloat32, dy_ = DType::kFloat32;
  bool direct_ = true, gather_ = false;
  int64_t y_numel_ = 0;
  DeviceTable<int64_t> a_table_, b_table_;  // matrix offsets in elements (gather only)
  Gemm gemm_;
};

DSC_REGISTER_KERNEL(kDscDomain, ops::kFusedMatMul, kCuda, kFloat32, MakeFactory<FusedMatMulCuda>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kFusedMatMul, kCuda, kFloat16, MakeFactory<FusedMatMulCuda>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kFusedMatMul, kCuda, kBFloat16, MakeFactory<FusedMatMulCuda>());

}  // namespace
}  // namespace dsc::cuda
