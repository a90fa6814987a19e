// Device-side helpers of the GPU communicators (runtime/nccl_communicator.cc), compiled with the
// CUDA kernels (kernels/cuda/collectives.cu) because the communicators are host C++.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ir/dtype.h"
#include "ir/status.h"

namespace dsc::cuda {

// kAvg after a summing collective, as runtime/communicator.h defines it: buf[i] /= by in the
// buffer's dtype for float32/float64, round(float(s) / by) (nearest even) for float16/bfloat16.
// Queued on `stream`; other dtypes are an error.
Status DivideInPlace(void* buf, int64_t count, DType dtype, int by, cudaStream_t stream);

}  // namespace dsc::cuda
