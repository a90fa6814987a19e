// Einsum (numpy semantics: implicit and explicit output, `...` broadcasting, repeated labels in
// an operand read its diagonal). The general case is a direct loop, one dot product over the summed
// labels per output element; a float32 contraction of two operands without diagonals, broadcasts
// or labels summed within one operand (matmul, attention's "bhqd,bhkd->bhqk") is instead
// transposed to (batch, M, K) x (batch, K, N) and run as one sgemm per batch.

#include <algorithm>
#include <type_traits>

#include "ir/einsum_equation.h"
#include "kernels/common/einsum_math.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/broadcast.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::cpu {
namespace {

constexpr size_t kMaxOperands = einsum::kMaxOperands;

template <typename T>
class EinsumKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    std::vector<std::vector<int64_t>> shapes;
    for (size_t k = 0; k < node.num_inputs(); ++k) {
      ASSIGN_OR_RETURN(auto dims, StaticDims(node.input(k)));
      shapes.push_back(std::move(dims));
    }
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(EinsumEquation eq, ParseEinsum(node.GetString("equation", ""), shapes));
    std::vector<int64_t> expect;
    for (int l : eq.output) expect.push_back(eq.label_size[static_cast<size_t>(l)]);
    if (expect != y)
      return InvalidArgument("output ", nn::DimsToString(y), " differs from the equation's ", nn::DimsToString(expect));

    einsum::EinsumTables t = einsum::MakeTables(eq, shapes, /*with_sums=*/false);
    out_dims_ = t.out_dims;
    if constexpr (std::is_same_v<T, float>) {
      PlanGemm(eq, shapes, t);
      if (gemm_) return Status::OK();
    }
    t = einsum::MakeTables(eq, shapes, /*with_sums=*/true);
    num_ops_ = shapes.size();
    out_strides_ = std::move(t.out_strides);
    sum_offsets_ = std::move(t.sum_offsets);
    combos_ = t.combos;
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    if constexpr (std::is_same_v<T, float>) {
      if (gemm_) {
        RunGemm(ctx);
        return Status::OK();
      }
    }
    const T* x[kMaxOperands] = {};
    for (size_t k = 0; k < num_ops_; ++k) x[k] = ctx.input(k).data<T>();
    T* y = ctx.output(0).data<T>();
    const int64_t n = Product(out_dims_), rank = static_cast<int64_t>(out_dims_.size());
    const int nops = static_cast<int>(num_ops_);
#pragma omp parallel for if (n * combos_ >= kParallelMin) schedule(static)
    for (int64_t o = 0; o < n; ++o) {
      const double acc = einsum::Element(o, rank, out_dims_.data(), out_strides_.data(), nops, x, sum_offsets_.data(),
                                         combos_, [](T v) { return static_cast<double>(v); });
      y[o] = static_cast<T>(acc);
    }
    return Status::OK();
  }

 private:
  // A two-operand contraction as one sgemm per batch (einsum::LowerToGemm).
  void PlanGemm(const EinsumEquation& eq, const std::vector<std::vector<int64_t>>& shapes,
                const einsum::EinsumTables& t) {
    einsum::GemmLowering g;
    if (!einsum::LowerToGemm(eq, shapes, t, &g)) return;
    batch_ = g.batch, m_ = g.m, n_ = g.n, k_ = g.k;
    a_plan_ = StridedPlan(g.a_dims, {g.a_strides});
    b_plan_ = StridedPlan(g.b_dims, {g.b_strides});
    y_plan_ = StridedPlan(g.y_dims, {g.y_strides});
    a_buf_.resize(static_cast<size_t>(batch_ * m_ * k_));
    b_buf_.resize(static_cast<size_t>(batch_ * k_ * n_));
    y_buf_.resize(static_cast<size_t>(batch_ * m_ * n_));
    gemm_ = true;
  }

  static void Gather(const BroadcastPlan& p, const float* src, float* dst) {
    ForEachRow(p, [&](int64_t o, const int64_t* off) {
      const int64_t stride = p.inner_stride(0);
      for (int64_t i = 0; i < p.inner(); ++i) dst[o + i] = src[off[0] + i * stride];
    });
  }

  void RunGemm(KernelContext& ctx) {
    Gather(a_plan_, ctx.input(0).data<float>(), a_buf_.data());
    Gather(b_plan_, ctx.input(1).data<float>(), b_buf_.data());
    for (int64_t i = 0; i < batch_; ++i)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m_), static_cast<int>(n_),
                  static_cast<int>(k_), 1.0f, a_buf_.data() + i * m_ * k_, static_cast<int>(k_),
                  b_buf_.data() + i * k_ * n_, static_cast<int>(n_), 0.0f, y_buf_.data() + i * m_ * n_,
                  static_cast<int>(n_));
    Gather(y_plan_, y_buf_.data(), ctx.output(0).data<float>());
  }

  bool gemm_ = false;
  int64_t batch_ = 1, m_ = 1, n_ = 1, k_ = 1;
  BroadcastPlan a_plan_, b_plan_, y_plan_;
  std::vector<float> a_buf_, b_buf_, y_buf_;  // sized once in Init

  size_t num_ops_ = 0;
  std::vector<int64_t> out_dims_;
  int64_t combos_ = 1;
  std::vector<int64_t> out_strides_;  // [operand * rank + d]
  std::vector<int64_t> sum_offsets_;  // [combo][operand]
};

template <typename T>
KernelFactory EinsumFactory() {
  return [](const Node& n) -> StatusOr<std::unique_ptr<OpKernel>> {
    if (n.num_inputs() < 1 || n.num_inputs() > kMaxOperands)
      return Unimplemented(n.Describe(), ": Einsum with ", n.num_inputs(), " operands (1 to ", kMaxOperands,
                           " supported)");
    return MakeFactory<EinsumKernel<T>>()(n);
  };
}

DSC_REGISTER_KERNEL("", "Einsum", kCpu, kFloat32, EinsumFactory<float>());
DSC_REGISTER_KERNEL("", "Einsum", kCpu, kFloat64, EinsumFactory<double>());

}  // namespace
}  // namespace dsc::cpu
