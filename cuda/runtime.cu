// SPDX-License-Identifier: Apache-2.0
// Devices, device memory and host <-> device copies through pinned staging.
// A copy of S bytes moves through two pinned buffers of 8 MiB in turn: while the GPU copies one
// chunk, the CPU fills (or drains) the other, so a pageable JS array reaches PCIe speed less the
// memcpy into pinned memory; cost ~S / min(PCIe, host memcpy) plus one synchronization.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "common/error.h"
#include "cuda.h"
#include "device.h"

namespace nodeccl {
namespace cuda {

void check(int err, const char* what) {
  if (err == cudaSuccess) return;
  auto e = static_cast<cudaError_t>(err);
  throw Error(ErrorCode::kIo, strcat(what, ": ", cudaGetErrorName(e), " (",
                                     cudaGetErrorString(e), ")"));
}

namespace {

constexpr int kMaxDevices = 64;
std::mutex gDevicesMu;
std::unique_ptr<Device> gDevices[kMaxDevices];

void setUp(Device& d) {
  check(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  for (int k = 0; k < 2; ++k) {
    check(cudaHostAlloc(&d.staging[k], kStagingBytes, cudaHostAllocDefault),
          "cudaHostAlloc (8 MiB staging buffer)");
    check(cudaEventCreateWithFlags(&d.stagingDone[k], cudaEventDisableTiming),
          "cudaEventCreate");
  }
}

}  // namespace

int deviceCount() {
  int n = 0;
  check(cudaGetDeviceCount(&n), "cudaGetDeviceCount");
  return n;
}

std::string describeDevice(int device) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  return strcat(p.name, ", compute ", p.major, ".", p.minor, ", ",
                p.totalGlobalMem >> 30, " GiB");
}

Device& acquire(int device, std::unique_lock<std::mutex>& lock) {
  int n = deviceCount();
  if (device < 0 || device >= n || device >= kMaxDevices) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("CUDA device ", device, " does not exist; this machine has ", n,
                       " (indices 0..", n - 1, ", after CUDA_VISIBLE_DEVICES)"));
  }
  Device* d;
  {
    std::lock_guard<std::mutex> g(gDevicesMu);
    if (!gDevices[device]) {
      gDevices[device] = std::make_unique<Device>();
      gDevices[device]->index = device;
    }
    d = gDevices[device].get();
  }
  lock = std::unique_lock<std::mutex>(d->mu);
  check(cudaSetDevice(device), "cudaSetDevice");
  if (d->stream == nullptr) setUp(*d);
  return *d;
}

void reserveTable(Device& d, size_t bytes) {
  if (bytes <= d.tableBytes) return;
  size_t want = std::max(bytes, d.tableBytes * 2);
  check(cudaStreamSynchronize(d.stream), "cudaStreamSynchronize");
  if (d.tableHost) cudaFreeHost(d.tableHost);
  if (d.tableDevice) cudaFree(d.tableDevice);
  d.tableHost = d.tableDevice = nullptr;
  d.tableBytes = 0;
  check(cudaHostAlloc(&d.tableHost, want, cudaHostAllocDefault), "cudaHostAlloc (table)");
  check(cudaMalloc(&d.tableDevice, want), "cudaMalloc (multi-tensor table)");
  d.tableBytes = want;
}

void* alloc(int device, size_t bytes) {
  std::unique_lock<std::mutex> lock;
  acquire(device, lock);
  void* p = nullptr;
  int err = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (err != cudaSuccess) {
    size_t freeBytes = 0, total = 0;
    cudaMemGetInfo(&freeBytes, &total);
    cudaGetLastError();  // clear the sticky-free error state of the allocation failure
    throw Error(ErrorCode::kIo, strcat("cudaMalloc of ", bytes, " bytes on device ", device,
                                       " failed: ", cudaGetErrorName(cudaError_t(err)), "; ",
                                       freeBytes, " of ", total, " bytes are free; dispose() "
                                       "tensors you no longer need"));
  }
  return p;
}

void release(int device, void* ptr) {
  std::unique_lock<std::mutex> lock;
  acquire(device, lock);
  check(cudaFree(ptr), "cudaFree");
}

void zero(int device, void* ptr, size_t bytes) {
  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  check(cudaMemsetAsync(ptr, 0, bytes, d.stream), "cudaMemsetAsync");
  check(cudaStreamSynchronize(d.stream), "cudaStreamSynchronize");
}

void synchronize(int device) {
  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  check(cudaStreamSynchronize(d.stream), "cudaStreamSynchronize");
}

void toDevice(int device, void* dst, const void* src, size_t bytes) {
  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  auto* out = static_cast<char*>(dst);
  auto* in = static_cast<const char*>(src);
  for (size_t off = 0, k = 0; off < bytes; off += kStagingBytes, k ^= 1) {
    // Wait until the GPU has read this buffer's previous chunk, refill it, send it.
    size_t n = std::min(kStagingBytes, bytes - off);
    check(cudaEventSynchronize(d.stagingDone[k]), "cudaEventSynchronize");
    std::memcpy(d.staging[k], in + off, n);
    check(cudaMemcpyAsync(out + off, d.staging[k], n, cudaMemcpyHostToDevice, d.stream),
          "cudaMemcpyAsync (host to device)");
    check(cudaEventRecord(d.stagingDone[k], d.stream), "cudaEventRecord");
  }
  check(cudaStreamSynchronize(d.stream), "cudaStreamSynchronize");
}

void toHost(int device, void* dst, const void* src, size_t bytes) {
  std::unique_lock<std::mutex> lock;
  Device& d = acquire(device, lock);
  auto* out = static_cast<char*>(dst);
  auto* in = static_cast<const char*>(src);
  size_t chunks = (bytes + kStagingBytes - 1) / kStagingBytes;
  auto issue = [&](size_t c) {
    size_t off = c * kStagingBytes, n = std::min(kStagingBytes, bytes - off);
    check(cudaMemcpyAsync(d.staging[c & 1], in + off, n, cudaMemcpyDeviceToHost, d.stream),
          "cudaMemcpyAsync (device to host)");
    check(cudaEventRecord(d.stagingDone[c & 1], d.stream), "cudaEventRecord");
  };
  // Keep one chunk in flight ahead of the one being drained into the caller's memory.
  if (chunks > 0) issue(0);
  for (size_t c = 0; c < chunks; ++c) {
    if (c + 1 < chunks) issue(c + 1);
    size_t off = c * kStagingBytes, n = std::min(kStagingBytes, bytes - off);
    check(cudaEventSynchronize(d.stagingDone[c & 1]), "cudaEventSynchronize");
    std::memcpy(out + off, d.staging[c & 1], n);
  }
}

}  // namespace cuda
}  // namespace nodeccl
