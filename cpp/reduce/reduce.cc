// SPDX-License-Identifier: Apache-2.0
// The public reduction entry points: argument checks, then a call through the kernel table of
// the SIMD variant chosen at run time (scalar, AVX2 or AVX-512; see kernels.h). The choice is
// made once, from the CPU's features and NODECCL_SIMD, and logged at NODECCL_DEBUG=info.
#include "reduce/reduce.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "common/error.h"
#include "common/log.h"
#include "reduce/kernels.h"

namespace nodeccl {
namespace {

using reduce_detail::KernelTable;

// The table in use; null until the first kernel call chooses one. Kernels load it with one
// acquire load; setSimdLevel replaces it.
std::atomic<const KernelTable*> gTable{nullptr};
std::atomic<int> gLevel{-1};
std::mutex gChooseMutex;

bool cpuSupports(SimdLevel level) {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's checks include the OS's XCR0 state: false when the kernel does not save the
  // AVX / AVX-512 registers, even on a CPU that has them.
  switch (level) {
    case SimdLevel::kScalar: return true;
    case SimdLevel::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case SimdLevel::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
  }
  return false;
#else
  // LIMITATION: only x86-64 has SIMD variants; elsewhere the portable kernels (vectorized by
  // the compiler for the baseline target) run, and forcing avx2/avx512 is a clear error.
  return level == SimdLevel::kScalar;
#endif
}

const KernelTable& tableOf(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return reduce_detail::avx512Kernels();
    case SimdLevel::kAvx2: return reduce_detail::avx2Kernels();
    case SimdLevel::kScalar: break;
  }
  return reduce_detail::scalarKernels();
}

std::string supportedList() {
  std::string s;
  for (int l = 0; l < kNumSimdLevels; ++l) {
    if (!cpuSupports(static_cast<SimdLevel>(l))) continue;
    if (!s.empty()) s += ", ";
    s += simdLevelName(static_cast<SimdLevel>(l));
  }
  return s;
}

Error unsupported(SimdLevel level, const char* where) {
  return Error(ErrorCode::kInvalidArgument,
               strcat(where, ": SIMD level ", simdLevelName(level), " cannot run on this CPU",
                      " (it supports: ", supportedList(), "); choose one of those, or unset",
                      " NODECCL_SIMD to pick the best automatically"));
}

// The best supported level, or the one NODECCL_SIMD names.
SimdLevel levelFromEnvironment() {
  SimdLevel best = SimdLevel::kScalar;
  for (int l = kNumSimdLevels - 1; l > 0; --l) {
    if (cpuSupports(static_cast<SimdLevel>(l))) {
      best = static_cast<SimdLevel>(l);
      break;
    }
  }
  const char* env = std::getenv("NODECCL_SIMD");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "auto") == 0) return best;
  for (int l = 0; l < kNumSimdLevels; ++l) {
    if (std::strcmp(env, simdLevelName(static_cast<SimdLevel>(l))) == 0) {
      if (!cpuSupports(static_cast<SimdLevel>(l))) {
        throw unsupported(static_cast<SimdLevel>(l), "NODECCL_SIMD");
      }
      return static_cast<SimdLevel>(l);
    }
  }
  throw Error(ErrorCode::kInvalidArgument,
              strcat("NODECCL_SIMD='", env, "' is not one of auto, scalar, avx2, avx512; this",
                     " CPU supports: ", supportedList()));
}

void install(SimdLevel level, const char* why) {
  gTable.store(&tableOf(level), std::memory_order_release);
  gLevel.store(static_cast<int>(level), std::memory_order_release);
  NODECCL_INFO("reduce", -1, 0, "SIMD kernels: ", simdLevelName(level), " (", why,
               "; this CPU supports: ", supportedList(), ")");
}

// The active table, choosing it on the first call. A bad NODECCL_SIMD throws on every call
// (nothing is installed), so each collective reports it rather than the first one only.
const KernelTable& kernels() {
  const KernelTable* t = gTable.load(std::memory_order_acquire);
  if (t != nullptr) return *t;
  std::lock_guard<std::mutex> lock(gChooseMutex);
  t = gTable.load(std::memory_order_acquire);
  if (t != nullptr) return *t;
  const char* env = std::getenv("NODECCL_SIMD");
  SimdLevel level = levelFromEnvironment();
  install(level, env != nullptr && *env != '\0' ? "from NODECCL_SIMD" : "best for this CPU");
  return *gTable.load(std::memory_order_acquire);
}

Error unknownDtype(const char* fn, DataType dtype) {
  return Error(ErrorCode::kInvalidArgument,
               strcat(fn, ": dtype ", static_cast<int>(dtype), " is not a known dtype; pass one",
                      " of 0..", kNumDataTypes - 1, " (float32 .. bfloat16, see common/dtype.h)"));
}

void checkDtypeOp(const char* fn, DataType dtype, ReduceOp op) {
  if (static_cast<unsigned>(dtype) >= static_cast<unsigned>(kNumDataTypes)) {
    throw unknownDtype(fn, dtype);
  }
  if (static_cast<unsigned>(op) >= static_cast<unsigned>(kNumReduceOps)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat(fn, ": reduce op ", static_cast<int>(op), " is not a known op; pass one",
                       " of 0..", kNumReduceOps - 1, " (sum, prod, min, max, avg)"));
  }
}

Error notHalf(const char* fn, DataType dtype) {
  return Error(ErrorCode::kInvalidArgument,
               strcat(fn, ": dtype ", dtypeName(dtype), " (", static_cast<int>(dtype),
                      ") is not a half type; pass float16 or bfloat16"));
}

int halfIndex(const char* fn, DataType dtype) {
  if (dtype == DataType::kFloat16) return 0;
  if (dtype == DataType::kBFloat16) return 1;
  throw notHalf(fn, dtype);
}

bool overlaps(const void* p, const void* q, size_t bytes) {
  auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return a < b + bytes && b < a + bytes;
}

}  // namespace

const char* simdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar: return "scalar";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx512: return "avx512";
  }
  return "unknown";
}

bool simdLevelSupported(SimdLevel level) { return cpuSupports(level); }

SimdLevel activeSimdLevel() {
  kernels();
  return static_cast<SimdLevel>(gLevel.load(std::memory_order_acquire));
}

void setSimdLevel(SimdLevel level) {
  if (!cpuSupports(level)) throw unsupported(level, "setSimdLevel");
  std::lock_guard<std::mutex> lock(gChooseMutex);
  install(level, "set by setSimdLevel");
}

void reduceInto(void* dst, const void* src, size_t count, DataType dtype, ReduceOp op) {
  checkDtypeOp("reduceInto", dtype, op);
  if (count == 0) return;
  kernels().into[static_cast<int>(dtype)][static_cast<int>(op)](dst, src, count);
}

void reduceTo(void* dst, const void* a, const void* b, size_t count, DataType dtype,
              ReduceOp op) {
  checkDtypeOp("reduceTo", dtype, op);
  if (count == 0) return;
  const size_t bytes = count * dtypeSize(dtype);
  if (dst == a) return kernels().into[static_cast<int>(dtype)][static_cast<int>(op)](dst, b, count);
  if (overlaps(dst, a, bytes) || overlaps(dst, b, bytes)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("reduceTo: dst ", dst, " overlaps a ", a, " or b ", b, " over ", bytes,
                       " bytes; dst must be a itself or a separate buffer"));
  }
  kernels().to[static_cast<int>(dtype)][static_cast<int>(op)](dst, a, b, count);
}

void divideInPlace(void* data, size_t count, DataType dtype, int divisor) {
  if (divisor <= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("divideInPlace: divisor ", divisor, " must be positive (it is the",
                       " number of ranks averaged)"));
  }
  if (static_cast<unsigned>(dtype) >= static_cast<unsigned>(kNumDataTypes)) {
    throw unknownDtype("divideInPlace", dtype);
  }
  if (count == 0) return;
  kernels().divide[static_cast<int>(dtype)](data, count, divisor);
}

void toFloat32(const void* src, float* dst, size_t count, DataType halfType) {
  const int h = halfIndex("toFloat32", halfType);
  if (count == 0) return;
  kernels().widen[h](static_cast<const uint16_t*>(src), dst, count);
}

void fromFloat32(const float* src, void* dst, size_t count, DataType halfType) {
  const int h = halfIndex("fromFloat32", halfType);
  if (count == 0) return;
  kernels().narrow[h](src, static_cast<uint16_t*>(dst), count);
}

}  // namespace nodeccl
