// SPDX-License-Identifier: Apache-2.0
// Streaming copies (copy.h): aligned 16-byte non-temporal stores in 64-byte groups, one cache
// line per group, with plain copies for the unaligned head and the tail.
#include "reduce/copy.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace nodeccl {

void copyStreaming(void* dst, const void* src, size_t bytes) {
#if defined(__x86_64__)
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  // Head: up to the first 64-byte boundary of dst, so every stream fills whole lines.
  size_t head = (64 - reinterpret_cast<uintptr_t>(d) % 64) % 64;
  if (head > bytes) head = bytes;
  std::memcpy(d, s, head);
  d += head;
  s += head;
  bytes -= head;
  for (; bytes >= 64; bytes -= 64, d += 64, s += 64) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 32));
    __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(d), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 48), e);
  }
  std::memcpy(d, s, bytes);
  // Streaming stores are weakly ordered: make them visible before any later flag or message.
  _mm_sfence();
#else
  std::memcpy(dst, src, bytes);
#endif
}

namespace {

// The last-level cache shared by this CPU, from sysfs (what the kernel was told: in a VM, the
// share the VM sees), else glibc's figure, else 32 MiB.
size_t lastLevelCacheBytes() {
  if (FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
    unsigned long long kib = 0;
    char unit = 0;
    int got = std::fscanf(f, "%llu%c", &kib, &unit);
    std::fclose(f);
    if (got >= 1 && kib > 0) return static_cast<size_t>(kib) << (unit == 'M' ? 20 : 10);
  }
  long v = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
  return v > 0 ? static_cast<size_t>(v) : size_t(32) << 20;
}

}  // namespace

bool streamingPays(size_t bytes) {
  // NODECCL_STREAM_MIN_BYTES moves the threshold (0: stream every staged copy, which the tests
  // use to run the streaming code at small sizes); init() refuses a value that is not one.
  static const size_t kThreshold = [] {
    const char* v = std::getenv("NODECCL_STREAM_MIN_BYTES");
    char* end = nullptr;
    unsigned long long b = v != nullptr && *v != '\0' ? std::strtoull(v, &end, 10) : 0;
    return end != nullptr && *end == '\0' ? static_cast<size_t>(b) : lastLevelCacheBytes();
  }();
  return bytes > kThreshold;
}

}  // namespace nodeccl
