// SPDX-License-Identifier: Apache-2.0
// Element-wise reductions on the GPU (dst[i] = op(dst[i], src[i])), every dtype and operator of
// cpp/reduce/reduce.cc with the same results: integer sum and product wrap modulo 2^bits; min
// and max propagate NaN; float16/bfloat16 widen to float32, apply, and round back once; avg
// accumulates like sum (the caller divides). Floats use correctly rounded operations.
// Cost: one pass; per element 2 * sizeof(T) bytes read and sizeof(T) written.
#include <cuda_runtime.h>

#include <type_traits>

#include "common/error.h"
#include "cuda.h"
#include "device.h"
#include "half.cuh"

namespace nodeccl {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
struct Wide {  // integer arithmetic in unsigned form, where overflow wraps by definition
  using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
};

template <typename T>
__device__ T applyOp(int op, T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = typename Wide<T>::U;
    if (op == 1) return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
    if (op == 2) return b < a ? b : a;
    if (op == 3) return a < b ? b : a;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));  // sum, avg
  } else {
    if (op == 1) return a * b;
    T r;
    if (op == 2) r = b < a ? b : a;
    else if (op == 3) r = a < b ? b : a;
    else return a + b;
    return b != b ? b : r;  // NaN in b wins; NaN in a survived the select
  }
}

template <typename T>
__global__ void reduceKernel(T* dst, const T* src, size_t n, int op) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    dst[i] = applyOp(op, dst[i], src[i]);
  }
}

template <bool kBf16>
__global__ void reduceHalfKernel(uint16_t* dst, const uint16_t* src, size_t n, int op) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    float a = kBf16 ? deviceBf16ToFloat(dst[i]) : deviceHalfToFloat(dst[i]);
    float b = kBf16 ? deviceBf16ToFloat(src[i]) : deviceHalfToFloat(src[i]);
    float r = applyOp(op, a, b);
    dst[i] = kBf16 ? deviceFloatToBf16(r) : deviceFloatToHalf(r);
  }
}

template <typename T>
void run(Device& d, void* dst, const void* src, size_t n, int op) {
  size_t blocks = (n + kThreads - 1) / kThreads;
  unsigned grid = static_cast<unsigned>(blocks < (1u << 20) ? blocks : (1u << 20));
  reduceKernel<T><<<grid, kThreads, 0, d.stream>>>(static_cast<T*>(dst),
                                                   static_cast<const T*>(src), n, op);
}

template <bool kBf16>
void runHalf(Device& d, void* dst, const void* src, size_t n, int op) {
  size_t blocks = (n + kThreads - 1) / kThreads;
  unsigned grid = static_cast<unsigned>(blocks < (1u << 20) ? blocks : (1u << 20));
  reduceHalfKernel<kBf16><<<grid, kThreads, 0, d.stream>>>(
      static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), n, op);
}

}  // namespace

void reduceInto(int device, void* dst, const void* src, size_t count, DataType dtype,
                ReduceOp op) {
  int o = static_cast<int>(op);
  if (o < 0 || o >= kNumReduceOps) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("CUDA reduceInto: reduce op ", o, " is not a known op; pass one of 0..",
                       kNumReduceOps - 1, " (sum, prod, min, max, avg)"));
  }
  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  if (count == 0) return;
  switch (dtype) {
    case DataType::kFloat32: run<float>(d, dst, src, count, o); break;
    case DataType::kFloat64: run<double>(d, dst, src, count, o); break;
    case DataType::kInt32: run<int32_t>(d, dst, src, count, o); break;
    case DataType::kInt8: run<int8_t>(d, dst, src, count, o); break;
    case DataType::kUint8: run<uint8_t>(d, dst, src, count, o); break;
    case DataType::kFloat16: runHalf<false>(d, dst, src, count, o); break;
    case DataType::kBFloat16: runHalf<true>(d, dst, src, count, o); break;
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("CUDA reduceInto: dtype ", static_cast<int>(dtype), " is not known; ",
                         "pass one of 0..", kNumDataTypes - 1));
  }
  check(cudaGetLastError(), "reduce kernel launch");
  check(cudaStreamSynchronize(d.stream), "reduce kernel");
}

}  // namespace cuda
}  // namespace nodeccl
