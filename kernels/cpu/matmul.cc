// MatMul (numpy semantics: 1-D promotion, broadcast batch dims) and Gemm, through OpenBLAS sgemm;
// float32, float16 and bfloat16 (any mix of them per operand).
//
// Half operands: widened to float32 scratch, multiplied by sgemm with float accumulation, the
// result rounded once to the output dtype (nearest even): the float32 kernel's arithmetic on the
// widened values, as the half adaptor would compute it, but in one OpenMP region that converts
// and then runs single-threaded sgemms over row blocks. Converting in an OpenMP loop and then
// calling the multi-threaded OpenBLAS made the OpenMP workers (still spinning after their loop)
// and OpenBLAS's pthreads fight for the cores: 512^3 took 24 ms instead of about 1 ms (see
// HalfGemm below).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <utility>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/broadcast.h"
#include "kernels/cpu/half_convert.h"

namespace dsc::cpu {
namespace {

// Y = A @ B with A:(...a, M, K), B:(...b, K, N), Y:(broadcast(a, b), M, N). A 1-D A is (1, K)
// and a 1-D B is (K, 1), their unit dim dropped from Y. Init lists, per output matrix, where its
// A and B matrices start, so Compute is one sgemm per matrix.
class MatMulKernel : public OpKernel {
 public:
  friend class HalfMatMulKernel;
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
  friend class HalfGemmKernel;
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

// ---- half precision

// A float view of an operand: the tensor itself when float32, else its widened copy in the
// shared scratch (half::SharedScratch; `scratch` is set per call by TakeScratch).
struct Operand {
  DType dtype = DType::kFloat32;
  float* scratch = nullptr;
  const float* Widen(const TensorView& t) {  // inside an OpenMP parallel region
    if (dtype == DType::kFloat32) return t.data<float>();
    const uint16_t* h = t.data<uint16_t>();
    const bool bf16 = dtype == DType::kBFloat16;
    const int64_t n = t.numel();
    float* f = scratch;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) f[i] = half::Load(h, i, bf16);
    return f;
  }
};

// Points each half operand (and a half output's float rows, `y`) into one shared scratch block.
void TakeScratch(const KernelContext& ctx, std::initializer_list<std::pair<Operand*, size_t>> operands, DType y_dtype,
                 float** y) {
  size_t floats = IsHalf(y_dtype) ? static_cast<size_t>(ctx.output(0).numel()) : 0;
  for (const auto& [o, input] : operands)
    if (o->dtype != DType::kFloat32) floats += static_cast<size_t>(ctx.input(input).numel());
  float* next = half::SharedScratch(floats);
  for (const auto& [o, input] : operands)
    if (o->dtype != DType::kFloat32) {
      o->scratch = next;
      next += ctx.input(input).numel();
    }
  *y = IsHalf(y_dtype) ? next : nullptr;
}

// One output matrix's rows [r0, r1) times B with a single-threaded sgemm; then those rows
// rounded to the output dtype when it is half.
struct RowBlock {
  int64_t a_off, b_off, y_off, r0, r1;
};

// Splits `batch` matrices of m rows into blocks so every OpenMP thread gets about one.
std::vector<RowBlock> RowBlocks(const std::vector<int64_t>& a_offsets, const std::vector<int64_t>& b_offsets,
                                int64_t m, int64_t mn) {
  const int64_t batch = static_cast<int64_t>(a_offsets.size());
  const int64_t threads = omp_get_max_threads();
  const int64_t per = std::max<int64_t>(1, std::min(m, (threads + batch - 1) / batch));
  const int64_t rows = (m + per - 1) / per;
  std::vector<RowBlock> blocks;
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t r = 0; r < m; r += rows)
      blocks.push_back({a_offsets[static_cast<size_t>(i)], b_offsets[static_cast<size_t>(i)], i * mn, r,
                        std::min(m, r + rows)});
  return blocks;
}

// Runs fn(a, b, y) over the blocks inside one OpenMP region with OpenBLAS on one thread per
// call, after widening A and B in the same region.
template <typename Fn>
void HalfGemm(const KernelContext& ctx, Operand& a, Operand& b, float* y, DType y_dtype,
              const std::vector<RowBlock>& blocks, int64_t n, Fn&& fn) {
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(1);
  void* out = ctx.output(0).ptr;
  const bool y_half = IsHalf(y_dtype), bf16 = y_dtype == DType::kBFloat16;
  float* yf = y_half ? y : ctx.output(0).data<float>();
  const int64_t count = static_cast<int64_t>(blocks.size());
#pragma omp parallel
  {
    const float* af = a.Widen(ctx.input(0));
    const float* bf = b.Widen(ctx.input(1));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < count; ++t) {
      const RowBlock& blk = blocks[static_cast<size_t>(t)];
      fn(af, bf, yf, blk);
      if (y_half) {
        uint16_t* h = static_cast<uint16_t*>(out);
        for (int64_t i = blk.y_off + blk.r0 * n; i < blk.y_off + blk.r1 * n; ++i) h[i] = half::Round(yf[i], bf16);
      }
    }
  }
  openblas_set_num_threads(saved);
}

class HalfMatMulKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    RETURN_IF_ERROR(mm_.Init(node));
    a_.dtype = node.input(0)->type.dtype;
    b_.dtype = node.input(1)->type.dtype;
    y_dtype_ = node.output(0)->type.dtype;
    blocks_ = RowBlocks(mm_.a_offsets_, mm_.b_offsets_, mm_.m_, mm_.m_ * mm_.n_);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const int64_t m = mm_.m_, k = mm_.k_, n = mm_.n_;
    const int64_t total = static_cast<int64_t>(mm_.a_offsets_.size()) * m * n;
    if (total == 0) return Status::OK();
    if (k == 0) {  // an empty sum: zeros in any dtype
      std::memset(ctx.output(0).ptr, 0, ctx.output(0).nbytes());
      return Status::OK();
    }
    float* y = nullptr;
    TakeScratch(ctx, {{&a_, 0}, {&b_, 1}}, y_dtype_, &y);
    HalfGemm(ctx, a_, b_, y, y_dtype_, blocks_, n, [&](const float* a, const float* b, float* y, const RowBlock& blk) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(blk.r1 - blk.r0), static_cast<int>(n),
                  static_cast<int>(k), 1.0f, a + blk.a_off + blk.r0 * k, static_cast<int>(k), b + blk.b_off,
                  static_cast<int>(n), 0.0f, y + blk.y_off + blk.r0 * n, static_cast<int>(n));
    });
    return Status::OK();
  }

 private:
  MatMulKernel mm_;
  Operand a_, b_;
  DType y_dtype_ = DType::kFloat32;
  std::vector<RowBlock> blocks_;
};

class HalfGemmKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    RETURN_IF_ERROR(gemm_.Init(node));
    a_.dtype = node.input(0)->type.dtype;
    b_.dtype = node.input(1)->type.dtype;
    c_.dtype = node.input(2) ? node.input(2)->type.dtype : DType::kFloat32;
    y_dtype_ = node.output(0)->type.dtype;
    blocks_ = RowBlocks({0}, {0}, gemm_.m_, gemm_.m_ * gemm_.n_);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const int64_t m = gemm_.m_, k = gemm_.k_, n = gemm_.n_, mn = m * n;
    if (mn == 0) return Status::OK();
    const bool use_c = gemm_.has_c_ && ctx.has_input(2) && gemm_.beta_ != 0.0f;
    float* y_half = nullptr;
    if (use_c) TakeScratch(ctx, {{&a_, 0}, {&b_, 1}, {&c_, 2}}, y_dtype_, &y_half);
    else TakeScratch(ctx, {{&a_, 0}, {&b_, 1}}, y_dtype_, &y_half);
    float* y = IsHalf(y_dtype_) ? y_half : ctx.output(0).data<float>();
    if (use_c) {  // Y = C (widened), then sgemm's beta
      const TensorView& c = ctx.input(2);
      const float* cf = c.data<float>();
      if (c_.dtype != DType::kFloat32) {
        half::ToFloat(c_.dtype, c.ptr, c_.scratch, c.numel());
        cf = c_.scratch;
      }
      BroadcastCopy(gemm_.c_plan_, cf, y);
    }
    if (k == 0) {
      for (int64_t i = 0; i < mn; ++i) y[i] = use_c ? gemm_.beta_ * y[i] : 0.0f;
      if (IsHalf(y_dtype_)) half::FromFloat(y_dtype_, y, ctx.output(0).ptr, mn);
      return Status::OK();
    }
    const bool ta = gemm_.trans_a_, tb = gemm_.trans_b_;
    const float alpha = gemm_.alpha_, beta = use_c ? gemm_.beta_ : 0.0f;
    HalfGemm(ctx, a_, b_, y_half, y_dtype_, blocks_, n, [&](const float* a, const float* b, float* yf, const RowBlock& blk) {
      // Rows r0..r1 of op(A): rows of A, or columns when A is transposed (lda stays A's row length).
      const float* ab = ta ? a + blk.r0 : a + blk.r0 * k;
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                  static_cast<int>(blk.r1 - blk.r0), static_cast<int>(n), static_cast<int>(k), alpha, ab,
                  static_cast<int>(ta ? m : k), b, static_cast<int>(tb ? k : n), beta, yf + blk.r0 * n,
                  static_cast<int>(n));
    });
    return Status::OK();
  }

 private:
  GemmKernel gemm_;
  Operand a_, b_, c_;
  DType y_dtype_ = DType::kFloat32;
  std::vector<RowBlock> blocks_;
};

// One factory per op for every dtype: the float32 kernel for all-float32 nodes, the half one
// when any operand or the output is float16/bfloat16 (mixed nodes included).
template <typename F, typename H>
KernelFactory FloatOrHalf() {
  return [](const Node& n) -> StatusOr<std::unique_ptr<OpKernel>> {
    return half::HasHalfValue(n) ? MakeFactory<H>()(n) : MakeFactory<F>()(n);
  };
}

[[maybe_unused]] const bool kRegistered =
    RegisterForDTypes("MatMul", {DType::kFloat32, DType::kFloat16, DType::kBFloat16},
                      FloatOrHalf<MatMulKernel, HalfMatMulKernel>()) &&
    RegisterForDTypes("Gemm", {DType::kFloat32, DType::kFloat16, DType::kBFloat16},
                      FloatOrHalf<GemmKernel, HalfGemmKernel>());

}  // namespace
}  // namespace dsc::cpu
