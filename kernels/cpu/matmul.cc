// MatMul (numpy semantics: 1-D promotion, broadcast batch dims) and Gemm, through OpenBLAS sgemm.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/broadcast.h"

namespace dsc::cpu {
namespace {

// Y = A @ B with A:(...a, M, K), B:(...b, K, N), Y:(broadcast(a, b), M, N). A 1-D A is (1, K)
// and a 1-D B is (K, 1), their unit dim dropped from Y. Init lists, per output matrix, where its
// A and B matrices start, so Compute is one sgemm per matrix.
class MatMulKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto a, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto b, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    if (a.empty() || b.empty()) return InvalidArgument("MatMul inputs must have rank >= 1");
    if (a.size() == 1) a.insert(a.begin(), 1);
    if (b.size() == 1) b.push_back(1);
    m_ = a[a.size() - 2];
    k_ = a.back();
    n_ = b.back();
    if (b[b.size() - 2] != k_) return InvalidArgument("inner dims differ: ", k_, " vs ", b[b.size() - 2]);
    const std::vector<int64_t> a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
    ASSIGN_OR_RETURN(auto batch, BroadcastDims({a_batch, b_batch}));
    if (Product(batch) * m_ * n_ != Product(y))
      return InvalidArgument("output has ", Product(y), " elements, expected ", Product(batch) * m_ * n_);
    if (Product(b_batch) == 1 && Product(a_batch) == Product(batch)) {
      // B shared by every batch (a Linear layer's weight): one sgemm with M = batch * M.
      m_ *= Product(batch);
      a_offsets_ = b_offsets_ = {0};
      return Status::OK();
    }
    // Offsets via a broadcast plan over the batch dims, in matrices.
    ASSIGN_OR_RETURN(BroadcastPlan p, MakeBroadcastPlan(batch, {a_batch, b_batch}));
    a_offsets_.assign(static_cast<size_t>(p.numel), 0);
    b_offsets_.assign(static_cast<size_t>(p.numel), 0);
    ForEachRow(p, [&](int64_t o, const int64_t* off) {
      for (int64_t i = 0; i < p.inner(); ++i) {
        a_offsets_[static_cast<size_t>(o + i)] = (off[0] + i * p.inner_stride(0)) * m_ * k_;
        b_offsets_[static_cast<size_t>(o + i)] = (off[1] + i * p.inner_stride(1)) * k_ * n_;
      }
    });
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    const float* a = ctx.input(0).data<float>();
    const float* b = ctx.input(1).data<float>();
    float* y = ctx.output(0).data<float>();
    const int64_t batch = static_cast<int64_t>(a_offsets_.size()), mn = m_ * n_;
    if (mn == 0) return Status::OK();
    if (k_ == 0) {
      std::fill(y, y + batch * mn, 0.0f);
      return Status::OK();
    }
    if (batch >= 2 * omp_get_max_threads() && m_ * n_ * k_ <= kSmallGemm && omp_get_max_threads() > 1) {
      // Many small matrices (attention's (B*heads) score/value products): one single-threaded
      // sgemm per matrix, matrices spread over OpenMP threads. OpenBLAS is set to 1 thread for
      // the loop so no call touches its thread pool (which is where the contention below comes
      // from); gpt_large's (64 x 128x128x64) products went from 4.4 to 1.3 ms.
      const int saved = openblas_get_num_threads();
      openblas_set_num_threads(1);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < batch; ++i) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m_), static_cast<int>(n_),
                    static_cast<int>(k_), 1.0f, a + a_offsets_[static_cast<size_t>(i)], static_cast<int>(k_),
                    b + b_offsets_[static_cast<size_t>(i)], static_cast<int>(n_), 0.0f, y + i * mn,
                    static_cast<int>(n_));
      }
      openblas_set_num_threads(saved);
      return Status::OK();
    }
    // Otherwise one sgemm per matrix, in order. Measured on the 2-core dev box with pthread
    // OpenBLAS: calling sgemm (OpenBLAS still multi-threaded) from OpenMP threads over the batch was
    // 2x faster for 8..64-sized matrices on some runs and 50-70x slower on others (contention
    // inside OpenBLAS), so here the batch stays serial and OpenBLAS threads each call as it sees fit.
    for (int64_t i = 0; i < batch; ++i) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m_), static_cast<int>(n_),
                  static_cast<int>(k_), 1.0f, a + a_offsets_[static_cast<size_t>(i)], static_cast<int>(k_),
                  b + b_offsets_[static_cast<size_t>(i)], static_cast<int>(n_), 0.0f, y + i * mn,
                  static_cast<int>(n_));
    }
    return Status::OK();
  }

 private:
  static constexpr int64_t kSmallGemm = 256 * 256 * 256;  // m*n*k up to which a matrix is "small"
  int64_t m_ = 0, k_ = 0, n_ = 0;
  std::vector<int64_t> a_offsets_, b_offsets_;  // in elements, one per output matrix
};

// Gemm: Y:(M, N) = alpha * op(A) @ op(B) + beta * C, op = transpose when transA/transB;
// A:(M, K) or (K, M), B:(K, N) or (N, K), C broadcastable to (M, N) and optional.
class GemmKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto a, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto b, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    if (a.size() != 2 || b.size() != 2 || y.size() != 2) return InvalidArgument("Gemm takes 2-D A, B and Y");
    alpha_ = node.GetFloat("alpha", 1.0f);
    beta_ = node.GetFloat("beta", 1.0f);
    trans_a_ = node.GetInt("transA", 0) != 0;
    trans_b_ = node.GetInt("transB", 0) != 0;
    m_ = trans_a_ ? a[1] : a[0];
    k_ = trans_a_ ? a[0] : a[1];
    n_ = trans_b_ ? b[0] : b[1];
    if ((trans_b_ ? b[1] : b[0]) != k_) return InvalidArgument("inner dims differ");
    if (y[0] != m_ || y[1] != n_) return InvalidArgument("output is not (", m_, ", ", n_, ")");
    if (const Value* c = node.input(2)) {
      has_c_ = true;
      ASSIGN_OR_RETURN(auto c_dims, StaticDims(c));
      ASSIGN_OR_RETURN(c_plan_, MakeBroadcastPlan(y, {c_dims}));
    }
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    float* y = ctx.output(0).data<float>();
    const int64_t mn = m_ * n_;
    if (mn == 0) return Status::OK();
    const bool use_c = has_c_ && ctx.has_input(2) && beta_ != 0.0f;
    if (use_c) BroadcastCopy(c_plan_, ctx.input(2).data<float>(), y);  // Y = C, then sgemm's beta
    if (k_ == 0) {
      for (int64_t i = 0; i < mn; ++i) y[i] = use_c ? beta_ * y[i] : 0.0f;
      return Status::OK();
    }
    cblas_sgemm(CblasRowMajor, trans_a_ ? CblasTrans : CblasNoTrans, trans_b_ ? CblasTrans : CblasNoTrans,
                static_cast<int>(m_), static_cast<int>(n_), static_cast<int>(k_), alpha_,
                ctx.input(0).data<float>(), static_cast<int>(trans_a_ ? m_ : k_), ctx.input(1).data<float>(),
                static_cast<int>(trans_b_ ? k_ : n_), use_c ? beta_ : 0.0f, y, static_cast<int>(n_));
    return Status::OK();
  }

 private:
  float alpha_ = 1, beta_ = 1;
  bool trans_a_ = false, trans_b_ = false, has_c_ = false;
  int64_t m_ = 0, k_ = 0, n_ = 0;
  BroadcastPlan c_plan_;
};

DSC_REGISTER_KERNEL("", "MatMul", kCpu, kFloat32, MakeFactory<MatMulKernel>());
DSC_REGISTER_KERNEL("", "Gemm", kCpu, kFloat32, MakeFactory<GemmKernel>());

}  // namespace
}  // namespace dsc::cpu
