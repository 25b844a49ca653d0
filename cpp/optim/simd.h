// SPDX-License-Identifier: Apache-2.0
// Run-time choice of instruction set for the element-wise kernels (cpp/optim, cpp/quant,
// cpp/loss): the binary is built for baseline x86-64 and carries AVX2 and AVX-512 copies of each
// hot loop, picked once per call from what the CPU reports.
//
// How a kernel file uses it: write the loop once as an always-inline template body, then let
// simd::run<K> call the copy compiled for baseline, AVX2 or AVX-512 that `isa()` picks. Every
// file that includes this header must also start with
//   #pragma GCC optimize("fp-contract=off")
// because AVX-512 (unlike baseline and AVX2) has fused multiply-add, and GCC would otherwise
// contract `a * b + c` into one rounding: the three copies then give different bits. With
// contraction off they give the same bits for the same inputs, which the tests check.
//
// Thread safety: isa() reads a value fixed on first use (or by setIsaForTesting before any
// concurrent use).
#pragma once

#include <cstddef>
#include <cstdint>

namespace nodeccl {
namespace simd {

enum class Isa : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The best level this CPU supports, capped by NODECCL_ISA=baseline|avx2|avx512 when set (read
// once; an unknown value is ignored with a warning on the `optim` log subsystem).
Isa detectedIsa();

// The level kernels use now: detectedIsa() unless a test has forced another.
Isa isa();

// Forces a level (capped at detectedIsa()); `forced == false` restores detection. For tests and
// benchmarks comparing levels; not thread-safe against running kernels.
void setIsaForTesting(bool forced, Isa level);

const char* isaName(Isa level);

}  // namespace simd
}  // namespace nodeccl

#if defined(__x86_64__) && defined(__GNUC__)
#define NODECCL_INLINE inline __attribute__((always_inline))
#define NODECCL_TARGET_AVX2 __attribute__((target("avx2,f16c,popcnt")))
#define NODECCL_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,f16c,popcnt")))
#define NODECCL_HAVE_X86_DISPATCH 1
#else
#define NODECCL_INLINE inline
#define NODECCL_TARGET_AVX2
#define NODECCL_TARGET_AVX512
#define NODECCL_HAVE_X86_DISPATCH 0
#endif

// Three copies of kernel K's body: `K` is a struct with `static NODECCL_INLINE R run(...)`;
// run<K>(args...) calls the copy compiled for isa(). The body is written once, so the copies
// differ only in the instructions the compiler may use.
namespace nodeccl {
namespace simd {

template <class K>
struct Versions {
  template <class... A>
  static auto baseline(A... a) { return K::run(a...); }
  template <class... A>
  NODECCL_TARGET_AVX2 static auto avx2(A... a) { return K::run(a...); }
  template <class... A>
  NODECCL_TARGET_AVX512 static auto avx512(A... a) { return K::run(a...); }
};

// Elements before the first 64-byte boundary of p (at most n): a kernel runs them in a loop of
// their own so that the vectorized loop's loads and stores of p (and of the other arrays, which
// usually share p's offset) do not each span two cache lines. Same arithmetic, same bits.
inline size_t headTo64(const void* p, size_t n) {
  size_t head = (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64 / 4;
  return head < n ? head : n;
}

template <class K, class... A>
auto run(A... a) {
  switch (isa()) {
    case Isa::kAvx512: return Versions<K>::avx512(a...);
    case Isa::kAvx2: return Versions<K>::avx2(a...);
    default: return Versions<K>::baseline(a...);
  }
}

}  // namespace simd
}  // namespace nodeccl
