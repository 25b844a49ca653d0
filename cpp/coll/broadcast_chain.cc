// SPDX-License-Identifier: Apache-2.0
// Pipelined chain broadcast, for large messages: ranks form a chain from the root (in rank
// order relative to it) and the data flows down it in chunks of kChunkBytes; each rank
// forwards chunk c - 1 while receiving chunk c.
//
// Cost, for n ranks, S bytes and C = ceil(S / chunk) chunks: C + n - 2 steps; every rank but
// the last sends S once and every rank but the root receives S once, so each link carries S
// (the binomial tree puts log2(n) * S on the root's). Non-roots receive into scratch and copy
// into the caller's buffer at the end, so a failed call leaves it unchanged.
#include <algorithm>
#include <cstring>

#include "coll/ring.h"

namespace nodeccl {

void broadcastChain(Communicator& comm, void* user, size_t bytes, int root) {
  const int n = comm.size();
  const int v = (comm.rank() - root + n) % n;
  const int prev = v == 0 ? -1 : (comm.rank() + n - 1) % n;
  const int next = v == n - 1 ? -1 : (comm.rank() + 1) % n;
  unsigned char* buf = v == 0 ? static_cast<unsigned char*>(user)
                              : scratchBytes(comm, bytes, kSlotOut);
  const size_t chunks = std::max<size_t>(1, (bytes + kChunkBytes - 1) / kChunkBytes);
  auto at = [&](size_t c) { return std::min(c * kChunkBytes, bytes); };
  auto len = [&](size_t c) { return std::min(bytes, (c + 1) * kChunkBytes) - at(c); };

  // Step c receives chunk c (if any remain) and forwards chunk c - 1 (from step 1 on). The
  // root has nothing to receive, so it sends chunk c at step c.
  for (size_t c = 0; c <= chunks; ++c) {
    const bool recvNow = prev >= 0 && c < chunks;
    const size_t sc = v == 0 ? c : c - 1;
    const bool sendNow = next >= 0 && (v == 0 ? c < chunks : c >= 1);
    if (!recvNow && !sendNow) continue;
    comm.sendRecv(sendNow ? next : -1, buf + (sendNow ? at(sc) : 0), sendNow ? len(sc) : 0,
                  recvNow ? prev : -1, buf + (recvNow ? at(c) : 0), recvNow ? len(c) : 0);
  }
  if (v != 0 && bytes > 0) std::memcpy(user, buf, bytes);
}

}  // namespace nodeccl
