// A small cuBLASLt wrapper for the GEMM-based CUDA kernels (MatMul, Gemm, Einsum, Conv): one
// row-major, optionally batched and strided D = alpha * op(A) op(B) + beta * D, fp32 compute,
// whose descriptors and algorithm are built once per kernel (at its first Compute), not per call.
//
//   GemmShape s{.a = DType::kFloat16, .b = DType::kFloat16, .d = DType::kFloat32, .m = M, .n = N, .k = K};
//   cuda::Gemm g(s);                                   // in the kernel, e.g. at Init
//   RETURN_IF_ERROR(g.Run(res, 1.0f, a, b, 0.0f, d));  // at Compute
#pragma once

#include <memory>

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "ir/dtype.h"
#include "ir/status.h"
#include "kernels/cuda/cuda_resources.h"

namespace dsc::cuda {

// Row-major operands: A is (m, k), or (k, m) stored when trans_a, with leading dim lda (elements
// between rows as stored); B is (k, n), or (n, k) when trans_b; D is (m, n) with ldd. Leading dims
// of 0 mean packed. Batches are `batch` matrices `stride_*` elements apart; a stride of 0 on A or
// B repeats that matrix for every batch (not allowed on D). A and B share one dtype (float32,
// float16 or bfloat16); D is that dtype or float32.
struct GemmShape {
  DType a = DType::kFloat32, b = DType::kFloat32, d = DType::kFloat32;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldd = 0;
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_d = 0;
};

// Whether the wrapper takes these dtypes as they are (else the caller converts first).
bool GemmSupports(DType ab, DType d);

class Gemm {
 public:
  Gemm() = default;
  explicit Gemm(const GemmShape& s) : s_(s) {}
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;
  ~Gemm();

  void Reset(const GemmShape& s);
  const GemmShape& shape() const { return s_; }

  // D = alpha * op(A) op(B) + beta * D on res->compute. m, n or k of 0: nothing, or D scaled by
  // beta (k = 0). The algorithm is chosen once per pointer alignment seen (cuBLASLt picks
  // vectorized kernels only for aligned pointers and leading dims). A large unbatched GEMM whose
  // pointers are 16-byte aligned but a leading dim is not (a 50257-word vocabulary) runs on copies
  // of its unaligned matrices with the leading dims rounded up, as torch.compile pads them: on
  // Hopper only 16-byte aligned operands reach the tensor-memory-accelerator kernels.
  Status Run(Resources* res, float alpha, const void* a, const void* b, float beta, void* d);

 private:
  Status Build(Resources* res);
  Status RunPadded(Resources* res, float alpha, const void* a, const void* b, float beta, void* d);
  GemmShape s_;
  bool built_ = false;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t la_ = nullptr, lb_ = nullptr, ld_ = nullptr;
  // One heuristic choice per alignment class (log2 of the common byte alignment, 0..8).
  cublasLtMatmulAlgo_t algo_[9] = {};
  bool have_algo_[9] = {};
  std::unique_ptr<Gemm> padded_;  // this GEMM with 16-byte leading dims, once RunPadded needs it
};

// dst[i] = src[i] converted (float32, float16, bfloat16, float64; round to nearest even) on
// res->compute.
Status ConvertDevice(Resources* res, const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n);

// dst[i * len + e] = src[offsets[i] + e] for i < count, e < len, converted to dst_dtype;
// `offsets` is a device array (elements of src).
Status GatherRowsDevice(Resources* res, const void* src, DType src_dtype, const int64_t* offsets, int64_t count,
                        int64_t len, void* dst, DType dst_dtype);

// Loads and stores of the float dtypes named at run time, through float (conversions around the
// GEMMs; the GEMMs themselves run in cuBLASLt).
__device__ __forceinline__ float LoadAny(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kFloat16:
      return __half2float(static_cast<const __half*>(p)[i]);
    case DType::kBFloat16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::kFloat64:
      return static_cast<float>(static_cast<const double*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}
__device__ __forceinline__ void StoreAny(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::kFloat16:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      break;
    case DType::kBFloat16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    case DType::kFloat64:
      static_cast<double*>(p)[i] = v;
      break;
    default:
      static_cast<float*>(p)[i] = v;
      break;
  }
}

// Bytes rounded up to 256 so scratch regions carved one after another stay aligned.
inline size_t AlignUp(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace dsc::cuda
