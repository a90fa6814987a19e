// FusedMatMul (ir/dsc_ops.h): numpy MatMul whose operands sgemm reads transposed through its
// transA/transB flags, so the fuse pass can drop the Transpose copies in front of MatMuls.
// Registered for float32; float16/bfloat16 nodes run it through the half adaptor (widened once,
// rounded once), which is the arithmetic of kernels/cpu/matmul.cc's half kernel.
#include <omp.h>

#include <algorithm>

#include "ir/dsc_ops.h"
#include "kernels/common/matmul_shape.h"
#include "kernels/cpu/blas.h"

namespace dsc::cpu {
namespace {

class FusedMatMulKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    for (const Value* v : {node.input(0), node.input(1), node.output(0)})
      if (v && v->type.dtype != DType::kFloat32)
        return InvalidArgument("FusedMatMul's float32 kernel got ", DTypeName(v->type.dtype), " value '", v->name(),
                               "'");
    ASSIGN_OR_RETURN(s_, matmul::ResolveFused(node));
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    const float* a = ctx.input(0).data<float>();
    const float* b = ctx.input(1).data<float>();
    float* y = ctx.output(0).data<float>();
    const int64_t batch = s_.batch(), mn = s_.m * s_.n;
    if (mn == 0) return Status::OK();
    if (s_.k == 0) {
      std::fill(y, y + batch * mn, 0.0f);
      return Status::OK();
    }
    const CBLAS_TRANSPOSE ta = s_.trans_a ? CblasTrans : CblasNoTrans, tb = s_.trans_b ? CblasTrans : CblasNoTrans;
    const int m = static_cast<int>(s_.m), n = static_cast<int>(s_.n), k = static_cast<int>(s_.k);
    const int lda = static_cast<int>(s_.lda()), ldb = static_cast<int>(s_.ldb());
    auto one = [&](int64_t i) {
      cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a + s_.a_offsets[static_cast<size_t>(i)], lda,
                  b + s_.b_offsets[static_cast<size_t>(i)], ldb, 0.0f, y + i * mn, n);
    };
    // The same two schedules as MatMul's kernel (kernels/cpu/matmul.cc explains the measurements):
    // many small matrices spread over OpenMP threads with OpenBLAS on one thread, else one
    // multi-threaded sgemm per matrix in order.
    if (batch >= 2 * omp_get_max_threads() && s_.m * s_.n * s_.k <= kSmallGemm && omp_get_max_threads() > 1) {
      const int saved = openblas_get_num_threads();
      openblas_set_num_threads(1);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < batch; ++i) one(i);
      openblas_set_num_threads(saved);
      return Status::OK();
    }
    for (int64_t i = 0; i < batch; ++i) one(i);
    return Status::OK();
  }

 private:
  static constexpr int64_t kSmallGemm = 256 * 256 * 256;
  matmul::FusedShape s_;
};

DSC_REGISTER_KERNEL(kDscDomain, ops::kFusedMatMul, kCpu, kFloat32, MakeFactory<FusedMatMulKernel>());

}  // namespace
}  // namespace dsc::cpu
