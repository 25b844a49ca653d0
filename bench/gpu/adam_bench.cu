// SPDX-License-Identifier: Apache-2.0
// GPU benchmark of nodeccl's fused multi-tensor Adam (its results are checked against the CPU
// kernel by nodeccl_cuda_tests, which bench/gpu/run.sh runs first). Measures the device's copy
// bandwidth (cudaMemcpy device to device: read + write), then times Adam steps over two layouts
// (one 64M-parameter tensor; 100 tensors of 640k). Prints one row per layout: time per step,
// effective bandwidth at 28 bytes per parameter, and its fraction of the copy bandwidth.
// bench/gpu/torch_adam.py prints the same rows for torch's fused Adam.
// Usage: nodeccl_cuda_bench [total parameters, default 67108864]
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda.h"
#include "optim/optim.h"

namespace {

using nodeccl::cuda::check;

// Milliseconds per call of `fn`, median-free: total over `iters` after `warmup` calls.
template <typename F>
double timeMs(F&& fn, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) fn();
  check(cudaDeviceSynchronize(), "sync");
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  check(cudaDeviceSynchronize(), "sync");
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
         iters;
}

double copyBandwidth(size_t bytes) {
  void *a, *b;
  check(cudaMalloc(&a, bytes), "cudaMalloc");
  check(cudaMalloc(&b, bytes), "cudaMalloc");
  check(cudaMemset(a, 1, bytes), "cudaMemset");
  double ms = timeMs([&] { check(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice), "copy"); },
                     3, 20);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (ms * 1e-3) / 1e9;  // GB/s, read + write
}

void benchLayout(const char* name, size_t tensors, size_t each, double copyGBs) {
  size_t total = tensors * each;
  std::vector<float*> p(tensors), g(tensors), m(tensors), v(tensors);
  std::vector<size_t> sizes(tensors, each);
  std::vector<double> steps(tensors, 0);
  float* arena = static_cast<float*>(nodeccl::cuda::alloc(0, 4 * total * sizeof(float)));
  for (size_t i = 0; i < tensors; ++i) {
    p[i] = arena + i * each;
    g[i] = arena + total + i * each;
    m[i] = arena + 2 * total + i * each;
    v[i] = arena + 3 * total + i * each;
  }
  nodeccl::optim::AdamOptions o;
  nodeccl::optim::ParamList list{tensors, p.data(), const_cast<const float* const*>(g.data()),
                                 sizes.data(), steps.data()};
  double ms = timeMs([&] { nodeccl::cuda::adamStep(0, o, list, m.data(), v.data(), nullptr); },
                     3, 20);
  double gbs = 28.0 * total / (ms * 1e-3) / 1e9;
  std::printf("| nodeccl fused Adam | %-22s | %11zu | %8.3f | %8.1f | %5.1f%% |\n", name, total, ms,
              gbs, 100.0 * gbs / copyGBs);
  nodeccl::cuda::release(0, arena);
}

}  // namespace

int main(int argc, char** argv) {
  size_t total = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : size_t(1) << 26;
  try {
    std::printf("device: %s\n", nodeccl::cuda::describeDevice(0).c_str());
    double copy = copyBandwidth(total * sizeof(float));
    std::printf("copy bandwidth (cudaMemcpy D2D, read + write): %.1f GB/s\n\n", copy);
    std::printf("| implementation | layout | parameters | ms/step | GB/s (28 B/param) | "
                "of copy |\n");
    std::printf("|---|---|---|---|---|---|\n");
    benchLayout("1 x 64M tensor", 1, total, copy);
    benchLayout("100 x 640k tensors", 100, total / 100, copy);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nodeccl_cuda_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
