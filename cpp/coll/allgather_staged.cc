// SPDX-License-Identifier: Apache-2.0
// Staged all-gather over shared memory (see staged.h for the window and its safety rules):
// every rank copies its block into its window, exchanges flags, then copies every rank's block
// into its output (its own from its input).
//
// Cost, for n ranks and an output of S bytes (blocks of S/n): one round of one-byte messages.
// Memory traffic per rank: S/n copied in, S copied out (about 2.5 S bytes read or written at
// n = 2), with no waiting between blocks, where the ring forwards each block through a pair's
// ring buffer at each of its n - 1 steps. Window: S/n in each of the two halves that alternate
// calls (up to 2 S/n of /dev/shm per rank, kept until destroy).

#include "coll/ring.h"
#include "coll/staged.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {

std::unique_ptr<StagedOp> startAllGatherStaged(Communicator& comm, const void* in, void* out,
                                               size_t count, DataType dtype, Millis timeout) {
  const char* kName = "allGather";
  checkDtype(comm, kName, dtype);
  const int n = comm.size(), r = comm.rank();
  const size_t block = checkedBytes(comm, kName, count, dtypeSize(dtype), size_t(n)) / size_t(n);
  checkBuffer(comm, kName, "input", in, count);
  checkBuffer(comm, kName, "output", out, count);
  checkPartOfWhole(comm, kName, "input", in, "output", out, count * dtypeSize(dtype));
  comm.beginOp(OpKind::kAllGather, timeout, OpParams{int(dtype), -1, -1, count});
  comm.noteAlgorithm("allGather", "staged", block * size_t(n));
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allGather staged count=", count, " ",
                dtypeName(dtype));

  const void* src = stagedBytes(in);
  unsigned char* dst = stagedBytes(out);
  auto shared = std::make_shared<StagedShared>();
  shared->mine = sharedOffset(comm, in, block);
  const StagedCall call = beginStaged(comm, shared->mine >= 0 ? 0 : block);
  shared->call = call.id;
  // Its output (n blocks), its input and both halves of its window.
  const bool stream = stagedStreams(comm, size_t(n + 3) * block);
  if (call.ok && shared->mine < 0) stagedCopy(call.shm->window(r, call.half), src, block, stream);
  traceStaging(comm, call, shared->mine >= 0 ? 0 : block);

  // Once every block is in shared memory (a rank's staged copy, or its shared input; this
  // rank's own in its input, which may be `out`'s block r itself), copy them all out: its own
  // first, while the staging copy may have left it in the cache, then the peers' from r + 1
  // on, so that at any time the ranks read different windows.
  Communicator* c = &comm;
  auto copyOut = [=] {
    const StagedShared& sh = *shared;
    for (int k = 0; k < n; ++k) {
      const int q = (r + k) % n;
      unsigned char* to = dst + size_t(q) * block;
      const unsigned char* from = q == r ? static_cast<const unsigned char*>(src)
                                  : sh.at[size_t(q)] ? sh.at[size_t(q)]
                                                     : call.shm->window(q, call.half);
      // An in-place call's own block is already there; checkPartOfWhole refused any other
      // overlap of input and output, so every other copy is between disjoint ranges.
      if (to != from) stagedCopy(to, from, block, stream);
    }
    for (int q = 0; q < n; ++q) sh.checkPeer(*c, q, "reading");
  };
  auto ring = [=] { allGatherRingCore(*c, src, dst, count, dtype); };
  return std::make_unique<StagedOp>(comm, call.ok, nullptr, copyOut, ring, "copy out", shared);
}

}  // namespace nodeccl
