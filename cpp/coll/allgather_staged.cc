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
#include <cstring>

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
  comm.beginOp(OpKind::kAllGather, timeout, OpParams{int(dtype), -1, -1, count});
  comm.noteAlgorithm("allGather", "staged", block * size_t(n));
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allGather staged count=", count, " ",
                dtypeName(dtype));

  const void* src = stagedBytes(in);
  unsigned char* dst = stagedBytes(out);
  const StagedCall call = beginStaged(comm, block);
  const bool stream = stagedStreams(comm, size_t(n + 1) * block);  // its output, its window
  if (call.ok) stagedCopy(call.shm->window(r, call.half), src, block, stream);
  traceStaging(comm, call, block);

  // Once every block is in shared memory (this rank's own in its input, which may be `out`'s
  // block r itself: memmove), copy them all out.
  auto copyOut = [=] {
    for (int q = 0; q < n; ++q) {
      if (q == r) std::memmove(dst + size_t(r) * block, src, block);
      else stagedCopy(dst + size_t(q) * block, call.shm->window(q, call.half), block, stream);
    }
  };
  Communicator* c = &comm;
  auto ring = [=] { allGatherRingCore(*c, src, dst, count, dtype); };
  return std::make_unique<StagedOp>(comm, call.ok, nullptr, copyOut, ring, "copy out");
}

}  // namespace nodeccl
