// SPDX-License-Identifier: Apache-2.0
// Multi-tensor apply, in the manner of apex: one kernel launch updates a whole list of tensors.
// The host writes a table into pinned memory -- one Entry per tensor (its N array pointers, its
// size, its own scalars) followed by one Block per chunk of kChunk elements -- copies it to the
// device with the launch, and block b of the grid processes chunk blocks[b].
// Cost: one launch, one table copy (~(64 + 8 * chunks) bytes per tensor), then one pass over
// the arrays: each element is read once from each array and written once to each state array.
//
// Array 1 is the gradient, only read; a null array pointer (state an option does not use) is
// neither read nor written. When every used array of a chunk is 16-byte aligned the chunk moves
// as float4; the element arithmetic is the same either way.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "cuda.h"
#include "device.h"

namespace nodeccl {
namespace cuda {

constexpr uint32_t kChunk = 65536;  // elements per block of the grid
constexpr int kThreads = 512;

template <int N, typename S>
struct Entry {
  float* ptr[N];
  size_t size;
  S scalars;
};

struct Block {
  uint32_t tensor;
  uint32_t chunk;
};

template <int N, typename S, typename Op>
__global__ void __launch_bounds__(kThreads)
multiTensorKernel(const Entry<N, S>* entries, const Block* blocks, Op op) {
  const Block b = blocks[blockIdx.x];
  const Entry<N, S> e = entries[b.tensor];
  size_t begin = size_t(b.chunk) * kChunk;
  size_t n = e.size - begin < kChunk ? e.size - begin : kChunk;

  // Vector path: four elements per thread per iteration when every array allows it.
  bool aligned = true;
  for (int k = 0; k < N; ++k) {
    if (e.ptr[k] != nullptr) aligned &= (reinterpret_cast<uintptr_t>(e.ptr[k] + begin) & 15) == 0;
  }
  size_t vecEnd = aligned ? n / 4 * 4 : 0;
  for (size_t i = size_t(threadIdx.x) * 4; i < vecEnd; i += size_t(blockDim.x) * 4) {
    float4 r[N];
    for (int k = 0; k < N; ++k) {
      if (e.ptr[k] != nullptr) r[k] = *reinterpret_cast<const float4*>(e.ptr[k] + begin + i);
    }
    float x[N];
    for (int lane = 0; lane < 4; ++lane) {
      for (int k = 0; k < N; ++k) x[k] = reinterpret_cast<float*>(&r[k])[lane];
      op(e.scalars, x);
      for (int k = 0; k < N; ++k) reinterpret_cast<float*>(&r[k])[lane] = x[k];
    }
    for (int k = 0; k < N; ++k) {
      if (k != 1 && e.ptr[k] != nullptr) *reinterpret_cast<float4*>(e.ptr[k] + begin + i) = r[k];
    }
  }

  // Scalar path: the tail of an aligned chunk, or all of an unaligned one.
  for (size_t i = vecEnd + threadIdx.x; i < n; i += blockDim.x) {
    float x[N];
    for (int k = 0; k < N; ++k) x[k] = e.ptr[k] != nullptr ? e.ptr[k][begin + i] : 0.0f;
    op(e.scalars, x);
    for (int k = 0; k < N; ++k) {
      if (k != 1 && e.ptr[k] != nullptr) e.ptr[k][begin + i] = x[k];
    }
  }
}

// Writes the table for `entries` into the device's pinned buffer, copies it and launches `op`
// over every non-empty tensor; returns when the kernel has finished. Caller holds the lock.
template <int N, typename S, typename Op>
void multiTensorApply(Device& d, const std::vector<Entry<N, S>>& entries, Op op) {
  std::vector<Block> blocks;
  for (size_t t = 0; t < entries.size(); ++t) {
    size_t chunks = (entries[t].size + kChunk - 1) / kChunk;
    if (chunks > UINT32_MAX || t > UINT32_MAX) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("CUDA optimizer: tensor ", t, " of ", entries[t].size,
                         " elements is too large (limit 2^32 chunks of ", kChunk, ")"));
    }
    for (size_t c = 0; c < chunks; ++c) {
      blocks.push_back({static_cast<uint32_t>(t), static_cast<uint32_t>(c)});
    }
  }
  if (blocks.empty()) return;

  // One table: entries, then blocks (aligned for Block's 4-byte fields).
  size_t entryBytes = entries.size() * sizeof(Entry<N, S>);
  size_t blockOffset = (entryBytes + 15) / 16 * 16;
  size_t total = blockOffset + blocks.size() * sizeof(Block);
  reserveTable(d, total);
  std::memcpy(d.tableHost, entries.data(), entryBytes);
  std::memcpy(static_cast<char*>(d.tableHost) + blockOffset, blocks.data(),
              blocks.size() * sizeof(Block));
  check(cudaMemcpyAsync(d.tableDevice, d.tableHost, total, cudaMemcpyHostToDevice, d.stream),
        "cudaMemcpyAsync (multi-tensor table)");

  // Grid dimension x allows 2^31 - 1 blocks: 1.4e14 elements, beyond any device's memory.
  auto* table = static_cast<char*>(d.tableDevice);
  multiTensorKernel<N, S, Op><<<static_cast<unsigned>(blocks.size()), kThreads, 0, d.stream>>>(
      reinterpret_cast<const Entry<N, S>*>(table),
      reinterpret_cast<const Block*>(table + blockOffset), op);
  check(cudaGetLastError(), "multi-tensor kernel launch");
  check(cudaStreamSynchronize(d.stream), "multi-tensor kernel");
}

}  // namespace cuda
}  // namespace nodeccl
