// SPDX-License-Identifier: Apache-2.0
// Large copies for the staged collectives (coll/staged.h), which move more data than the caches
// hold: stores that bypass the cache avoid reading every destination line from memory before
// overwriting it, a third of the memory traffic of a plain copy.
#pragma once

#include <cstddef>

namespace nodeccl {

// Copies `bytes` from src to dst (which must not overlap) with non-temporal stores on x86-64
// (SSE2, which every x86-64 CPU has), with memcpy elsewhere. Use it only when the destination
// will not be read again before the caches have turned over (see streamingPays): data written
// this way leaves the cache, so a reader finds it in memory, not in the cache.
void copyStreaming(void* dst, const void* src, size_t bytes);

// Whether a collective whose ranks on this host together touch `bytes` should copy with
// copyStreaming: true when that is more than the last-level cache holds (or than
// NODECCL_STREAM_MIN_BYTES, when set).
bool streamingPays(size_t bytes);

}  // namespace nodeccl
