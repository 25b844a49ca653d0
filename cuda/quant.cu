// SPDX-License-Identifier: Apache-2.0
// Encode float32 to float16, bfloat16, blockwise int8 and 1-bit sign codes on the GPU, and
// decode back. Formats (the CPU reference is cuda/quant_reference.cc):
//   float16/bfloat16: round to nearest even, bits of cpp/common/half.h.
//   int8:  per block of `block` elements, scale = absmax / 127 (0 for an all-zero block);
//          q = rint(x / scale) in [-127, 127]; decode x' = q * scale. |x - x'| <= scale / 2.
//   sign1: per block, scale = mean |x| (accumulated in float64); bit i of word i / 32 is set when
//          x < 0 (or x is -0); decode x' = bit ? -scale : scale. The error-feedback residual
//          x - x' is the caller's (signSGD / 1-bit Adam).
// Cost: one pass, memory bound: float16/bfloat16 read 4 and write 2 bytes per element; int8
// reads 4 twice (absmax, then quantize; the block stays in L2) and writes 1; sign1 likewise
// with 1/8 byte written.
#include <cuda_runtime.h>

#include <cmath>
#include <mutex>

#include "common/error.h"
#include "cuda.h"
#include "device.h"
#include "half.cuh"

namespace nodeccl {
namespace cuda {
namespace {

constexpr int kThreads = 256;

unsigned gridFor(size_t n) {
  size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535u * 32u ? blocks : 65535u * 32u);
}

__global__ void toHalfKernel(const float* src, uint16_t* dst, size_t n, bool bf16) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    dst[i] = bf16 ? deviceFloatToBf16(src[i]) : deviceFloatToHalf(src[i]);
  }
}

__global__ void fromHalfKernel(const uint16_t* src, float* dst, size_t n, bool bf16) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    dst[i] = bf16 ? deviceBf16ToFloat(src[i]) : deviceHalfToFloat(src[i]);
  }
}

// One CUDA block per code block: a block-wide reduction, then each thread codes its elements.
// kAbsMax: max |x| (int8); otherwise sum |x| in float64 (sign1).
template <bool kAbsMax>
__device__ double blockStat(const float* x, size_t n) {
  __shared__ double partial[kThreads];
  double acc = 0;
  for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
    double a = fabs(static_cast<double>(x[i]));
    acc = kAbsMax ? (a > acc ? a : acc) : acc + a;
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      double o = partial[threadIdx.x + stride];
      partial[threadIdx.x] = kAbsMax ? (o > partial[threadIdx.x] ? o : partial[threadIdx.x])
                                     : partial[threadIdx.x] + o;
    }
    __syncthreads();
  }
  double r = partial[0];
  __syncthreads();
  return r;
}

__global__ void int8EncodeKernel(const float* src, size_t n, size_t block, int8_t* dst,
                                 float* scales) {
  size_t begin = blockIdx.x * block;
  size_t len = n - begin < block ? n - begin : block;
  float absmax = static_cast<float>(blockStat<true>(src + begin, len));
  float scale = __fdiv_rn(absmax, 127.0f);
  if (threadIdx.x == 0) scales[blockIdx.x] = scale;
  for (size_t i = threadIdx.x; i < len; i += blockDim.x) {
    float q = scale == 0 ? 0.0f : rintf(__fdiv_rn(src[begin + i], scale));
    q = fminf(fmaxf(q, -127.0f), 127.0f);
    dst[begin + i] = static_cast<int8_t>(q);
  }
}

__global__ void int8DecodeKernel(const int8_t* src, const float* scales, size_t n, size_t block,
                                 float* dst) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    dst[i] = __fmul_rn(static_cast<float>(src[i]), scales[i / block]);
  }
}

// Sign bits are gathered a warp at a time: `block` is a multiple of 32, so each warp's 32
// elements form one word of one code block.
__global__ void sign1EncodeKernel(const float* src, size_t n, size_t block, uint32_t* dst,
                                  float* scales) {
  size_t begin = blockIdx.x * block;
  size_t len = n - begin < block ? n - begin : block;
  double sum = blockStat<false>(src + begin, len);
  if (threadIdx.x == 0) scales[blockIdx.x] = static_cast<float>(sum / static_cast<double>(len));
  size_t rounded = (len + 31) / 32 * 32;
  for (size_t i = threadIdx.x; i < rounded; i += blockDim.x) {
    bool neg = i < len && signbit(src[begin + i]);
    uint32_t word = __ballot_sync(0xffffffffu, neg);
    if ((threadIdx.x & 31) == 0) dst[(begin + i) / 32] = word;
  }
}

__global__ void sign1DecodeKernel(const uint32_t* src, const float* scales, size_t n,
                                  size_t block, float* dst) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    float s = scales[i / block];
    dst[i] = (src[i / 32] >> (i % 32)) & 1u ? -s : s;
  }
}

void checkBlock(Codec codec, size_t count, size_t block) {
  if (codec != Codec::kInt8 && codec != Codec::kSign1) return;
  bool ok = block > 0 && (codec != Codec::kSign1 || block % 32 == 0);
  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("CUDA ", codec == Codec::kInt8 ? "int8" : "sign1", " codec: block ",
                       block, " is not usable; pass a block size > 0",
                       codec == Codec::kSign1 ? " and a multiple of 32 (e.g. 2048)" : ""));
  }
  if ((count + block - 1) / block > 0x7fffffffu) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("CUDA codec: ", count, " elements in blocks of ", block,
                       " make more than 2^31 - 1 blocks; use a larger block"));
  }
}

Error unknownCodec(int codec) {
  return Error(ErrorCode::kInvalidArgument,
               strcat("CUDA codec ", codec, " is unknown; pass 0 (float16), 1 (bfloat16), ",
                      "2 (int8) or 3 (sign1)"));
}

}  // namespace

void encode(int device, Codec codec, const float* src, size_t count, size_t block, void* dst,
            float* scales) {
  checkBlock(codec, count, block);
  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  if (count == 0) return;
  unsigned codeBlocks = static_cast<unsigned>((count + block - 1) / (block ? block : 1));
  switch (codec) {
    case Codec::kFloat16:
    case Codec::kBFloat16:
      toHalfKernel<<<gridFor(count), kThreads, 0, d.stream>>>(
          src, static_cast<uint16_t*>(dst), count, codec == Codec::kBFloat16);
      break;
    case Codec::kInt8:
      int8EncodeKernel<<<codeBlocks, kThreads, 0, d.stream>>>(
          src, count, block, static_cast<int8_t*>(dst), scales);
      break;
    case Codec::kSign1:
      sign1EncodeKernel<<<codeBlocks, kThreads, 0, d.stream>>>(
          src, count, block, static_cast<uint32_t*>(dst), scales);
      break;
    default: throw unknownCodec(static_cast<int>(codec));
  }
  check(cudaGetLastError(), "encode kernel launch");
  check(cudaStreamSynchronize(d.stream), "encode kernel");
}

void decode(int device, Codec codec, const void* src, const float* scales, size_t count,
            size_t block, float* dst) {
  checkBlock(codec, count, block);
  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  if (count == 0) return;
  switch (codec) {
    case Codec::kFloat16:
    case Codec::kBFloat16:
      fromHalfKernel<<<gridFor(count), kThreads, 0, d.stream>>>(
          static_cast<const uint16_t*>(src), dst, count, codec == Codec::kBFloat16);
      break;
    case Codec::kInt8:
      int8DecodeKernel<<<gridFor(count), kThreads, 0, d.stream>>>(
          static_cast<const int8_t*>(src), scales, count, block, dst);
      break;
    case Codec::kSign1:
      sign1DecodeKernel<<<gridFor(count), kThreads, 0, d.stream>>>(
          static_cast<const uint32_t*>(src), scales, count, block, dst);
      break;
    default: throw unknownCodec(static_cast<int>(codec));
  }
  check(cudaGetLastError(), "decode kernel launch");
  check(cudaStreamSynchronize(d.stream), "decode kernel");
}

}  // namespace cuda
}  // namespace nodeccl
