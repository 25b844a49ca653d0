// SPDX-License-Identifier: Apache-2.0
// All-reduce in place on shared arrays: the staged all-reduce (allreduce_staged.cc) takes
// this path when every rank's buffer was allocated from its shared heap
// (transport/shm/shared_heap.h), so every rank can read and write every rank's buffer. After
// the first flag exchange, rank r owns segment r (Segments::split) of all the buffers at once:
// chunk by chunk, it reads that chunk from every rank's buffer, reduces it in rank order into a
// scratch chunk that stays in cache, and writes the result into every rank's buffer. No other
// rank touches segment r, so nothing needs to wait until the second exchange, after which
// every buffer holds the whole result.
//
// Cost, for n ranks and S bytes per rank: two rounds of one-byte messages, as for any staged
// call. Memory traffic per rank: S read (its segment of n buffers) and S written: 2 S bytes,
// where the staged algorithm moves 4.5 S at n = 2 (a staging copy, the reduction, the copy out)
// and the ring 5.5 S. No window is used. Plain stores, even for buffers larger than the cache:
// streaming stores measured slower here, as each written line is read again by its owner.
//
// Safety (see staged.h): before each chunk it writes, the rank checks every peer's gaveUp
// word, so a peer that failed and returned is not written to afterwards (LIMITATION: a peer
// that gives up between that check and the write gets that one chunk, at most 64 KiB, written
// into its array after it returned; its error already says the array may hold partial
// results, and its heap then never punches out or hands out again the pages of a released
// array, so the late write cannot reach memory given to a new array).
#include <algorithm>
#include <cstring>
#include <vector>

#include "coll/ring.h"
#include "coll/staged.h"

namespace nodeccl {
namespace {

// Elements per chunk: 64 KiB of float32, so the reduced chunk is still in L2 when it is
// written out n times.
constexpr size_t kChunkElems = 16 * 1024;

}  // namespace

void allReduceSharedPush(Communicator& comm, const StagedShared& shared, size_t count,
                         DataType dtype, ReduceOp op) {
  const int n = comm.size(), r = comm.rank();
  const size_t elem = dtypeSize(dtype);
  const Segments seg = Segments::split(count, n);
  const size_t first = seg.offset(r), own = seg.count(r);
  auto* chunk = static_cast<unsigned char*>(comm.scratch(kChunkElems * elem, kSlotOut));
  std::vector<const void*> blocks(static_cast<size_t>(n));
  for (size_t i = 0; i < own; i += kChunkElems) {
    const size_t m = std::min(kChunkElems, own - i), at = (first + i) * elem;
    for (int q = 0; q < n; ++q) blocks[static_cast<size_t>(q)] = shared.at[size_t(q)] + at;
    reduceBlocksTo(comm, blocks, chunk, m, dtype, op, false);
    // Every peer checked before any write (a chunk read from a peer that gave up is written
    // nowhere), then peers first, starting after this rank to spread the writes, its own last.
    for (int q = 0; q < n; ++q) shared.checkPeer(comm, q, "writing into");
    for (int k = 1; k <= n; ++k) {
      const int q = (r + k) % n;
      std::memcpy(shared.at[static_cast<size_t>(q)] + at, chunk, m * elem);
    }
  }
}

}  // namespace nodeccl
