// SPDX-License-Identifier: Apache-2.0
// Microbenchmark of the reduction kernels (cpp/reduce/) under each SIMD variant this CPU runs:
// GB/s of `y += x` (float32 sum) in L1, in L2, in L3 and out of cache, with memcpy on the same
// buffers as the ceiling, plus the fused and half-precision kernels. Built by CMake as
// nodeccl_bench_reduce; run it bare, or pass a list of variants: `nodeccl_bench_reduce avx2`.
//
// Rates: "GB/s" is the per-array size S divided by the time (10^9 B/s), the rate at which a
// collective can reduce incoming data; "mem GB/s" counts every byte the kernel reads and
// writes (3 S for y += x: read y, read x, write y; 2 S for memcpy).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "reduce/reduce.h"

using namespace nodeccl;

namespace {

using Clock = std::chrono::steady_clock;

// Median of 7 trials of `reps` calls each, after one untimed call, in seconds per call. reps is
// chosen so one trial takes about 20 ms: long enough to swamp timer cost, short on 2 cores.
double secondsPerCall(const std::function<void()>& fn) {
  fn();
  auto t0 = Clock::now();
  fn();
  double once = std::chrono::duration<double>(Clock::now() - t0).count();
  size_t reps = std::max<size_t>(1, static_cast<size_t>(0.02 / std::max(once, 1e-9)));
  std::vector<double> trials;
  for (int t = 0; t < 7; ++t) {
    auto s = Clock::now();
    for (size_t r = 0; r < reps; ++r) fn();
    trials.push_back(std::chrono::duration<double>(Clock::now() - s).count() / reps);
  }
  std::sort(trials.begin(), trials.end());
  return trials[trials.size() / 2];
}

struct Case {
  const char* name;
  double memFactor;  // bytes moved per byte of S
  size_t elemBytes;  // element size of the S-sized arrays
  std::function<void(void* y, const void* x, void* z, size_t count)> run;
};

std::vector<Case> cases() {
  using DT = DataType;
  return {
      {"memcpy y <- x", 2, 4,
       [](void* y, const void* x, void*, size_t n) { std::memcpy(y, x, n * 4); }},
      {"f32 y += x", 3, 4,
       [](void* y, const void* x, void*, size_t n) {
         reduceInto(y, x, n, DT::kFloat32, ReduceOp::kSum);
       }},
      {"f32 z = y + x", 3, 4,
       [](void* y, const void* x, void* z, size_t n) {
         reduceTo(z, y, x, n, DT::kFloat32, ReduceOp::kSum);
       }},
      {"f32 y = max(y,x)", 3, 4,
       [](void* y, const void* x, void*, size_t n) {
         reduceInto(y, x, n, DT::kFloat32, ReduceOp::kMax);
       }},
      {"f16 y += x", 3, 2,
       [](void* y, const void* x, void*, size_t n) {
         reduceInto(y, x, n, DT::kFloat16, ReduceOp::kSum);
       }},
      {"bf16 y += x", 3, 2,
       [](void* y, const void* x, void*, size_t n) {
         reduceInto(y, x, n, DT::kBFloat16, ReduceOp::kSum);
       }},
      {"f16 -> f32", 3, 2,  // reads S, writes 2 S
       [](void* y, const void* x, void* z, size_t n) {
         toFloat32(x, static_cast<float*>(z), n, DT::kFloat16);
       }},
      {"f32 -> bf16", 3, 2,
       [](void* y, const void* x, void* z, size_t n) {
         fromFloat32(static_cast<const float*>(z), y, n, DT::kBFloat16);
       }},
  };
}

struct Size {
  const char* where;
  size_t bytes;  // per array
};

// Two or three arrays of this size fit in: L1 (32 KiB), L2 (1 MiB), L3 (32 MiB), or nothing.
const Size kSizes[] = {{"L1", 8 << 10}, {"L2", 192 << 10}, {"L3", 4 << 20}, {"DRAM", 256 << 20}};

void runLevel(SimdLevel level, std::vector<char>& y, std::vector<char>& x, std::vector<char>& z) {
  setSimdLevel(level);
  std::printf("\n## %s\n\n| kernel | where | S | GB/s | mem GB/s |\n|---|---|---:|---:|---:|\n",
              simdLevelName(level));
  for (const Case& c : cases()) {
    for (const Size& s : kSizes) {
      const size_t count = s.bytes / c.elemBytes;
      double sec = secondsPerCall([&] { c.run(y.data(), x.data(), z.data(), count); });
      double gbs = s.bytes / sec / 1e9;
      std::printf("| %s | %s | %zu KiB | %.1f | %.1f |\n", c.name, s.where, s.bytes >> 10, gbs,
                  gbs * c.memFactor);
      std::fflush(stdout);
    }
  }
}

// Zeros in x keep y constant however often it is added (no overflow to inf, no subnormals);
// every array is written once first so no page faults land in the timing.
void fillOnce(std::vector<char>& y, std::vector<char>& x, std::vector<char>& z) {
  const size_t n = y.size() / 4;
  auto* yf = reinterpret_cast<float*>(y.data());
  for (size_t i = 0; i < n; ++i) yf[i] = 1.0f + static_cast<float>(i % 7);
  std::memset(x.data(), 0, x.size());
  std::memcpy(z.data(), y.data(), z.size());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<SimdLevel> levels;
    for (int l = 0; l < kNumSimdLevels; ++l) {
      const SimdLevel level = static_cast<SimdLevel>(l);
      bool wanted = argc < 2;
      for (int a = 1; a < argc; ++a) wanted |= std::string(argv[a]) == simdLevelName(level);
      if (!wanted) continue;
      if (simdLevelSupported(level)) levels.push_back(level);
      else std::printf("# %s: not supported by this CPU, skipped\n", simdLevelName(level));
    }
    const size_t maxBytes = kSizes[std::size(kSizes) - 1].bytes * 2;  // f32 out of f16 cases
    std::vector<char> y(maxBytes), x(maxBytes), z(maxBytes);
    fillOnce(y, x, z);
    std::printf("# nodeccl reduction kernels, one thread; GB/s = S / time, mem GB/s = bytes "
                "read + written / time; median of 7 trials\n");
    for (SimdLevel level : levels) runLevel(level, y, x, z);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "nodeccl_bench_reduce: %s\n", e.what());
    return 1;
  }
}
