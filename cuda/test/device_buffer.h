// SPDX-License-Identifier: Apache-2.0
// Helpers of the CUDA test binary: device copies of host vectors, and the checks that compare
// GPU results with the CPU kernels' bit for bit (or within a stated number of float32 ulps).
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda.h"
#include "test/harness.h"

namespace nodeccl_cuda_test {

constexpr int kDevice = 0;

// A device array owning its memory; filled from and read back into host vectors.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : size_(host.size()) {
    ptr_ = static_cast<T*>(nodeccl::cuda::alloc(kDevice, bytes()));
    nodeccl::cuda::toDevice(kDevice, ptr_, host.data(), bytes());
  }
  explicit DeviceArray(size_t n) : size_(n) {
    ptr_ = static_cast<T*>(nodeccl::cuda::alloc(kDevice, bytes()));
    nodeccl::cuda::zero(kDevice, ptr_, bytes());
  }
  ~DeviceArray() { nodeccl::cuda::release(kDevice, ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return ptr_; }
  size_t bytes() const { return size_ * sizeof(T); }
  std::vector<T> host() const {
    std::vector<T> out(size_);
    nodeccl::cuda::toHost(kDevice, out.data(), ptr_, bytes());
    return out;
  }

 private:
  size_t size_;
  T* ptr_ = nullptr;
};

// Distance in units in the last place between two floats (0 when the bits match; NaN == NaN).
inline int64_t ulps(float a, float b) {
  if (a != a && b != b) return 0;
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = INT32_MIN - ia;
  if (ib < 0) ib = INT32_MIN - ib;
  return ia > ib ? int64_t(ia) - ib : int64_t(ib) - ia;
}

// Fails (with the first differing index and both values) when any element is more than
// `maxUlps` apart; returns the largest distance seen.
inline int64_t expectClose(const std::string& what, const std::vector<float>& gpu,
                           const std::vector<float>& cpu, int64_t maxUlps) {
  int64_t worst = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    int64_t d = ulps(gpu[i], cpu[i]);
    if (d > maxUlps && worst <= maxUlps) {
      nodeccl_test::fail(what + ": element " + std::to_string(i) + " GPU " +
                         std::to_string(gpu[i]) + " vs CPU " + std::to_string(cpu[i]) + " (" +
                         std::to_string(d) + " ulps, allowed " + std::to_string(maxUlps) + ")");
    }
    if (d > worst) worst = d;
  }
  return worst;
}

// Normal(0, scale) floats from a fixed seed, so a failure can be replayed.
inline std::vector<float> randomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace nodeccl_cuda_test
