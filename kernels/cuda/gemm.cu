// The cuBLASLt GEMM wrapper of kernels/cuda/gemm.h and the dtype conversion the GEMM kernels use
// around it.
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/gemm.h"

namespace dsc::cuda {
namespace {

StatusOr<cudaDataType_t> CudaType(DType t) {
  switch (t) {
    case DType::kFloat32:
      return CUDA_R_32F;
    case DType::kFloat16:
      return CUDA_R_16F;
    case DType::kBFloat16:
      return CUDA_R_16BF;
    default:
      return InvalidArgument("cuBLASLt GEMM on ", DTypeName(t), " operands");
  }
}

// log2 of the largest power of two (at most 256) dividing every value.
int AlignClass(std::initializer_list<uint64_t> values) {
  uint64_t bits = 256;
  for (uint64_t v : values) bits |= v;
  int c = 0;
  while (c < 8 && !(bits & (uint64_t{1} << c))) ++c;
  return c;
}

}  // namespace

bool GemmSupports(DType ab, DType d) {
  const bool f = ab == DType::kFloat32 || ab == DType::kFloat16 || ab == DType::kBFloat16;
  return f && (d == ab || d == DType::kFloat32);
}

Gemm::~Gemm() { Reset(s_); }

void Gemm::Reset(const GemmShape& s) {
  // Destroy calls cannot fail in a way a destructor could report; their status is dropped.
  if (la_) (void)cublasLtMatrixLayoutDestroy(la_);
  if (lb_) (void)cublasLtMatrixLayoutDestroy(lb_);
  if (ld_) (void)cublasLtMatrixLayoutDestroy(ld_);
  if (op_) (void)cublasLtMatmulDescDestroy(op_);
  la_ = lb_ = ld_ = nullptr;
  op_ = nullptr;
  built_ = false;
  for (bool& h : have_algo_) h = false;
  s_ = s;
}

Status Gemm::Build(Resources* res) {
  const GemmShape& s = s_;
  if (s.a != s.b) return InvalidArgument("GEMM operands of two dtypes (", DTypeName(s.a), ", ", DTypeName(s.b), ")");
  if (!GemmSupports(s.a, s.d)) return InvalidArgument("GEMM of ", DTypeName(s.a), " operands into ", DTypeName(s.d));
  if (s.batch < 1 || s.batch > INT32_MAX) return InvalidArgument("GEMM batch ", s.batch, " out of range");
  if (s.batch > 1 && s.stride_d == 0) return InvalidArgument("GEMM batches would all write one output matrix");
  ASSIGN_OR_RETURN(cudaDataType_t ab, CudaType(s.a));
  ASSIGN_OR_RETURN(cudaDataType_t dt, CudaType(s.d));
  // TF32 only rounds float32 operands; half ones multiply exactly in fp32 anyway.
  const cublasComputeType_t compute =
      s.a == DType::kFloat32 && res->allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  DSC_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op_, compute, CUDA_R_32F));
  // cuBLASLt is column-major, and a row-major (r, c) matrix is its column-major (c, r) transpose;
  // so D^T = op(B)^T op(A)^T is computed: cuBLAS's first operand is our B, its second our A.
  const cublasOperation_t op_first = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  DSC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
  DSC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
  const int64_t lda = s.lda ? s.lda : (s.trans_a ? s.m : s.k);
  const int64_t ldb = s.ldb ? s.ldb : (s.trans_b ? s.k : s.n);
  const int64_t ldd = s.ldd ? s.ldd : s.n;
  const uint64_t m = static_cast<uint64_t>(s.m), n = static_cast<uint64_t>(s.n), k = static_cast<uint64_t>(s.k);
  // Layouts describe the stored (column-major view of each row-major) matrix, before op().
  DSC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la_, ab, s.trans_b ? k : n, s.trans_b ? n : k, ldb));
  DSC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb_, ab, s.trans_a ? m : k, s.trans_a ? k : m, lda));
  DSC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld_, dt, n, m, ldd));
  if (s.batch > 1) {
    const int32_t count = static_cast<int32_t>(s.batch);
    const struct {
      cublasLtMatrixLayout_t layout;
      int64_t stride;
    } batched[] = {{la_, s.stride_b}, {lb_, s.stride_a}, {ld_, s.stride_d}};
    for (const auto& [layout, stride] : batched) {
      DSC_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
      DSC_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                        sizeof(stride)));
    }
  }
  built_ = true;
  return Status::OK();
}

namespace {

// D = beta * D over a batch of (m, n) matrices with leading dim ldd (the k = 0 GEMM).
__global__ void ScaleKernel(void* d, DType t, int64_t batch, int64_t m, int64_t n, int64_t ldd, int64_t stride,
                            float beta) {
  const int64_t total = batch * m * n;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t bi = i / (m * n), r = i / n % m, c = i % n;
    const int64_t at = bi * stride + r * ldd + c;
    StoreAny(d, t, at, beta == 0.0f ? 0.0f : beta * LoadAny(d, t, at));
  }
}

// Multiply-adds from which a GEMM with an unaligned leading dim runs on padded copies: the copies
// move each unaligned matrix twice more, which a GEMM this large repays many times over (the
// 8192 x 768 x 50257 head of GPT-2 small ran at 94 TFLOP/s unaligned on an H200).
constexpr double kPadMinMacs = double{1 << 26};
constexpr int64_t kPadBytes = 16;

// The stored (rows, cols, ld) of A, B and D (row-major, before op()).
struct Stored {
  int64_t rows, cols, ld;
};
Stored StoredA(const GemmShape& s) {
  return {s.trans_a ? s.k : s.m, s.trans_a ? s.m : s.k, s.lda ? s.lda : (s.trans_a ? s.m : s.k)};
}
Stored StoredB(const GemmShape& s) {
  return {s.trans_b ? s.n : s.k, s.trans_b ? s.k : s.n, s.ldb ? s.ldb : (s.trans_b ? s.k : s.n)};
}
Stored StoredD(const GemmShape& s) { return {s.m, s.n, s.ldd ? s.ldd : s.n}; }

bool Unaligned(const Stored& x, DType t) { return x.ld * static_cast<int64_t>(DTypeSize(t)) % kPadBytes != 0; }
int64_t PaddedLd(const Stored& x, DType t) {
  const int64_t q = kPadBytes / static_cast<int64_t>(DTypeSize(t));
  return (x.cols + q - 1) / q * q;
}
size_t PaddedBytes(const Stored& x, DType t) {
  return (static_cast<size_t>(x.rows * PaddedLd(x, t)) * DTypeSize(t) + 255) / 256 * 256;
}

bool NeedsPadding(const GemmShape& s, const void* a, const void* b, const void* d) {
  if (s.batch != 1 || static_cast<double>(s.m) * s.n * s.k < kPadMinMacs) return false;
  for (const void* p : {a, b, d})
    if (reinterpret_cast<uintptr_t>(p) % kPadBytes != 0) return false;  // padding leading dims would not help
  return Unaligned(StoredA(s), s.a) || Unaligned(StoredB(s), s.b) || Unaligned(StoredD(s), s.d);
}

// dst (rows x cols, leading dim dld) = src (leading dim sld), elements of E's size.
template <typename E>
__global__ void Copy2D(const E* src, int64_t sld, E* dst, int64_t dld, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t r = i / cols, c = i % cols;
    dst[r * dld + c] = src[r * sld + c];
  }
}

Status CopyMatrix(Resources* res, const void* src, int64_t sld, void* dst, int64_t dld, int64_t rows, int64_t cols,
                  DType t) {
  const int64_t n = rows * cols;
  if (n == 0) return Status::OK();
  if (DTypeSize(t) == 2)
    Copy2D<uint16_t><<<GridFor(*res, n), kThreads, 0, res->compute>>>(
        static_cast<const uint16_t*>(src), sld, static_cast<uint16_t*>(dst), dld, rows, cols);
  else
    Copy2D<uint32_t><<<GridFor(*res, n), kThreads, 0, res->compute>>>(
        static_cast<const uint32_t*>(src), sld, static_cast<uint32_t*>(dst), dld, rows, cols);
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

bool SameShape(const GemmShape& x, const GemmShape& y) {
  return x.a == y.a && x.b == y.b && x.d == y.d && x.trans_a == y.trans_a && x.trans_b == y.trans_b && x.m == y.m &&
         x.n == y.n && x.k == y.k && x.lda == y.lda && x.ldb == y.ldb && x.ldd == y.ldd && x.batch == y.batch &&
         x.stride_a == y.stride_a && x.stride_b == y.stride_b && x.stride_d == y.stride_d;
}

}  // namespace

// The unaligned matrices are copied to leading dims rounded up to 16 bytes (in the GEMM's own
// scratch), the aligned GEMM runs on the copies, and an unaligned D is copied back (and in first
// when beta reads it). The padding columns are never read.
Status Gemm::RunPadded(Resources* res, float alpha, const void* a, const void* b, float beta, void* d) {
  const GemmShape& s = s_;
  const Stored sa = StoredA(s), sb = StoredB(s), sd = StoredD(s);
  const bool pa = Unaligned(sa, s.a), pb = Unaligned(sb, s.b), pd = Unaligned(sd, s.d);
  GemmShape p = s;
  if (pa) p.lda = PaddedLd(sa, s.a);
  if (pb) p.ldb = PaddedLd(sb, s.b);
  if (pd) p.ldd = PaddedLd(sd, s.d);
  if (!padded_ || !SameShape(padded_->shape(), p)) padded_ = std::make_unique<Gemm>(p);
  const size_t bytes_a = pa ? PaddedBytes(sa, s.a) : 0, bytes_b = pb ? PaddedBytes(sb, s.b) : 0;
  ASSIGN_OR_RETURN(void* scratch, res->GemmPadScratch(bytes_a + bytes_b + (pd ? PaddedBytes(sd, s.d) : 0)));
  char* base = static_cast<char*>(scratch);
  void* a2 = pa ? base : const_cast<void*>(a);
  void* b2 = pb ? base + bytes_a : const_cast<void*>(b);
  void* d2 = pd ? base + bytes_a + bytes_b : d;
  if (pa) RETURN_IF_ERROR(CopyMatrix(res, a, sa.ld, a2, p.lda, sa.rows, sa.cols, s.a));
  if (pb) RETURN_IF_ERROR(CopyMatrix(res, b, sb.ld, b2, p.ldb, sb.rows, sb.cols, s.b));
  if (pd && beta != 0.0f) RETURN_IF_ERROR(CopyMatrix(res, d, sd.ld, d2, p.ldd, sd.rows, sd.cols, s.d));
  RETURN_IF_ERROR(padded_->Run(res, alpha, a2, b2, beta, d2));
  if (pd) RETURN_IF_ERROR(CopyMatrix(res, d2, p.ldd, d, sd.ld, sd.rows, sd.cols, s.d));
  return Status::OK();
}

Status Gemm::Run(Resources* res, float alpha, const void* a, const void* b, float beta, void* d) {
  const GemmShape& s = s_;
  if (s.m == 0 || s.n == 0 || s.batch == 0) return Status::OK();
  if (s.k == 0) {
    const int64_t total = s.batch * s.m * s.n;
    ScaleKernel<<<GridFor(*res, total), kThreads, 0, res->compute>>>(d, s.d, s.batch, s.m, s.n, s.ldd ? s.ldd : s.n,
                                                                     s.stride_d, beta);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }
  if (NeedsPadding(s, a, b, d)) return RunPadded(res, alpha, a, b, beta, d);
  if (!built_) RETURN_IF_ERROR(Build(res));
  const uint64_t ea = DTypeSize(s.a), ed = DTypeSize(s.d);
  const int64_t lda = s.lda ? s.lda : (s.trans_a ? s.m : s.k);
  const int64_t ldb = s.ldb ? s.ldb : (s.trans_b ? s.k : s.n);
  const int64_t ldd = s.ldd ? s.ldd : s.n;
  const int cls =
      AlignClass({reinterpret_cast<uint64_t>(a), reinterpret_cast<uint64_t>(b), reinterpret_cast<uint64_t>(d),
                  static_cast<uint64_t>(lda) * ea, static_cast<uint64_t>(ldb) * ea, static_cast<uint64_t>(ldd) * ed,
                  static_cast<uint64_t>(s.stride_a) * ea, static_cast<uint64_t>(s.stride_b) * ea,
                  static_cast<uint64_t>(s.stride_d) * ed});
  if (!have_algo_[cls]) {
    cublasLtMatmulPreference_t pref = nullptr;
    DSC_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = res->lt_workspace_bytes;
    const uint32_t align = 1u << cls;
    cublasStatus_t st =
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(align));
    // Split-K partial sums in the compute type (fp32) only: the in-place and output-type schemes
    // round each partial to a half output, which put a 3x1023x17 bf16 product 0.013 away from the
    // fp32-accumulated result on an H200.
    const uint32_t reduction = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reduction,
                                                sizeof(reduction));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(res->lt, op_, la_, lb_, ld_, ld_, pref, 1, &result, &found);
    (void)cublasLtMatmulPreferenceDestroy(pref);
    DSC_CUBLAS_CHECK(st);
    if (found == 0)
      return Internal("cuBLASLt has no algorithm for a ", DTypeName(s.a), " GEMM (m ", s.m, ", n ", s.n, ", k ", s.k,
                      ", batch ", s.batch, ") into ", DTypeName(s.d), " at ", align, "-byte alignment");
    algo_[cls] = result.algo;
    have_algo_[cls] = true;
  }
  // cuBLAS's first operand is our B, its second our A (see Build).
  DSC_CUBLAS_CHECK(cublasLtMatmul(res->lt, op_, &alpha, b, la_, a, lb_, &beta, d, ld_, d, ld_, &algo_[cls],
                                  res->lt_workspace, res->lt_workspace_bytes, res->compute));
  return Status::OK();
}

namespace {
__global__ void ConvertKernel(const void* src, DType st, void* dst, DType dt, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    if (st == DType::kFloat64 && dt == DType::kFloat64)
      static_cast<double*>(dst)[i] = static_cast<const double*>(src)[i];
    else
      StoreAny(dst, dt, i, LoadAny(src, st, i));
  }
}
__global__ void GatherRowsKernel(const void* src, DType st, const int64_t* offsets, int64_t count, int64_t len,
                                 void* dst, DType dt) {
  const int64_t n = count * len;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    StoreAny(dst, dt, i, LoadAny(src, st, offsets[i / len] + i % len));
}
}  // namespace

Status GatherRowsDevice(Resources* res, const void* src, DType src_dtype, const int64_t* offsets, int64_t count,
                        int64_t len, void* dst, DType dst_dtype) {
  const int64_t n = count * len;
  if (n <= 0) return Status::OK();
  GatherRowsKernel<<<GridFor(*res, n), kThreads, 0, res->compute>>>(src, src_dtype, offsets, count, len, dst,
                                                                    dst_dtype);
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

Status ConvertDevice(Resources* res, const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  if (n <= 0) return Status::OK();
  if (src_dtype == dst_dtype) {
    DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * DTypeSize(src_dtype), cudaMemcpyDeviceToDevice,
                                   res->compute));
    return Status::OK();
  }
  ConvertKernel<<<GridFor(*res, n), kThreads, 0, res->compute>>>(src, src_dtype, dst, dst_dtype, n);
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

}  // namespace dsc::cuda
