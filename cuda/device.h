// SPDX-License-Identifier: Apache-2.0
// Per-device state shared by the plugin's .cu files: the stream every call runs on, the pinned
// staging buffers of host copies, and the device-side table of multi-tensor launches.
// One mutex per device serializes calls on it; a call holds it from first enqueue to last wait.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <mutex>

namespace nodeccl {
namespace cuda {

struct Device {
  int index = 0;
  std::mutex mu;
  cudaStream_t stream = nullptr;

  // Staging: two pinned buffers of kStagingBytes, each with an event marking its last use.
  void* staging[2] = {nullptr, nullptr};
  cudaEvent_t stagingDone[2] = {nullptr, nullptr};

  // Multi-tensor table: pinned host copy and device copy, grown on demand.
  void* tableHost = nullptr;
  void* tableDevice = nullptr;
  size_t tableBytes = 0;
};

constexpr size_t kStagingBytes = size_t(8) << 20;

// The device's state, created (stream, events, staging) on first use; `lock` is taken on it.
// Makes `device` current on the calling thread. Throws kInvalidArgument for a bad index.
Device& acquire(int device, std::unique_lock<std::mutex>& lock);

// Grows the multi-tensor table to at least `bytes` (caller holds the device lock).
void reserveTable(Device& d, size_t bytes);

}  // namespace cuda
}  // namespace nodeccl
