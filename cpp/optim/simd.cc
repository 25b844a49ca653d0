// SPDX-License-Identifier: Apache-2.0
// Detection of the instruction-set level for the dispatched kernels (see simd.h).
#include "optim/simd.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace nodeccl {
namespace simd {

namespace {

Isa probeCpu() {
#if NODECCL_HAVE_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) return Isa::kAvx2;
#endif
  return Isa::kBaseline;
}

// NODECCL_ISA caps the level (to compare levels, or to rule one out on a misbehaving host).
Isa probe() {
  Isa cpu = probeCpu();
  const char* env = std::getenv("NODECCL_ISA");
  if (!env || !*env) return cpu;
  Isa want = cpu;
  if (std::strcmp(env, "baseline") == 0) {
    want = Isa::kBaseline;
  } else if (std::strcmp(env, "avx2") == 0) {
    want = Isa::kAvx2;
  } else if (std::strcmp(env, "avx512") != 0) {
    NODECCL_WARN("optim", -1, -1, "NODECCL_ISA=", env, " is not baseline, avx2 or avx512; ignored");
  }
  Isa level = static_cast<int>(want) < static_cast<int>(cpu) ? want : cpu;
  NODECCL_INFO("optim", -1, -1, "NODECCL_ISA=", env, ": kernels use ", isaName(level));
  return level;
}

std::atomic<int> forcedLevel{-1};

}  // namespace

Isa detectedIsa() {
  static const Isa level = probe();
  return level;
}

Isa isa() {
  int f = forcedLevel.load(std::memory_order_relaxed);
  return f < 0 ? detectedIsa() : static_cast<Isa>(f);
}

void setIsaForTesting(bool forced, Isa level) {
  int cap = static_cast<int>(detectedIsa());
  int want = static_cast<int>(level);
  forcedLevel.store(forced ? (want < cap ? want : cap) : -1, std::memory_order_relaxed);
}

const char* isaName(Isa level) {
  switch (level) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "baseline";
  }
}

}  // namespace simd
}  // namespace nodeccl
