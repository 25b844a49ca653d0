// SPDX-License-Identifier: Apache-2.0
// Staged reduce-scatter over shared memory (see staged.h for the window and its safety rules).
// Rank r owns block r of the n blocks of the input, and:
//   1. stages every other block of its input into its window (its own block left out);
//   2. exchanges flags: every rank's copies are in place;
//   3. reduces its block, from its own input and every peer's staged copy, in rank order,
//      straight into the caller's output (what it reads is in shared memory or its own).
//
// Cost, for n ranks and an input of S bytes per rank (blocks of S/n): one round of one-byte
// messages. Memory traffic per rank: (n - 1)/n S copied in, S read and S/n written by the
// reduction: about 2.5 S bytes at n = 2, where the ring copies every block into and out of a
// pair's ring and waits at each of its n - 1 steps. Window: (n - 1)/n S in each of the two
// halves that alternate calls (up to 2 (n - 1)/n S of /dev/shm per rank, kept until destroy).
#include <cstring>

#include "coll/ring.h"
#include "coll/staged.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {

std::unique_ptr<StagedOp> startReduceScatterStaged(Communicator& comm, const void* in,
                                                   void* out, size_t count, DataType dtype,
                                                   ReduceOp op, Millis timeout) {
  const char* kName = "reduceScatter";
  checkDtype(comm, kName, dtype);
  checkOp(comm, kName, op);
  const int n = comm.size(), r = comm.rank();
  checkedBytes(comm, kName, count, dtypeSize(accumulateType(dtype)), size_t(n));
  checkBuffer(comm, kName, "input", in, count);
  checkBuffer(comm, kName, "output", out, count);
  checkPartOfWhole(comm, kName, "output", out, "input", in, count * dtypeSize(dtype));
  comm.beginOp(OpKind::kReduceScatter, timeout, OpParams{int(dtype), int(op), -1, count});
  const size_t block = count * dtypeSize(dtype);
  comm.noteAlgorithm("reduceScatter", "staged", block * size_t(n));
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "reduceScatter staged count=", count, " ",
                dtypeName(dtype), " ", reduceOpName(op));

  // Rank q's half holds the blocks other than q, packed in order.
  auto stagedAt = [block](int q, int k) { return size_t(k - (k > q ? 1 : 0)) * block; };
  auto shared = std::make_shared<StagedShared>();
  shared->mine = sharedOffset(comm, in, size_t(n) * block);
  const bool stages = shared->mine < 0;
  const StagedCall call = beginStaged(comm, stages ? size_t(n - 1) * block : 0);
  shared->call = call.id;
  const unsigned char* user = stagedBytes(in);
  void* dst = stagedBytes(out);
  unsigned char* mine = call.shm->window(r, call.half);
  const bool stream = stagedStreams(comm, 2 * size_t(n) * block);  // its input, its window

  // 1. Stage the blocks before and after this rank's own (none from a shared input).
  if (call.ok && stages) {
    stagedCopy(mine, user, size_t(r) * block, stream);
    stagedCopy(mine + size_t(r) * block, user + size_t(r + 1) * block,
               size_t(n - 1 - r) * block, stream);
  }
  traceStaging(comm, call, stages ? size_t(n - 1) * block : 0);

  // 2. Once every rank has staged: this rank's block, reduced from every rank's copy straight
  // into the output. (When one could not stage, all take the ring in the same call.)
  Communicator* c = &comm;
  auto reduce = [=] {
    const StagedShared& sh = *shared;
    std::vector<const void*> blocks(static_cast<size_t>(n));
    for (int q = 0; q < n; ++q) {
      const size_t k = static_cast<size_t>(q);
      blocks[k] = q == r      ? user + size_t(r) * block
                  : sh.at[k]  ? sh.at[k] + size_t(r) * block
                              : call.shm->window(q, call.half) + stagedAt(q, r);
    }
    reduceBlocksTo(*c, blocks, dst, count, dtype, op, stream);
    for (int q = 0; q < n; ++q) sh.checkPeer(*c, q, "reading");
  };
  auto ring = [=] { reduceScatterRingCore(*c, user, dst, count, dtype, op); };
  return std::make_unique<StagedOp>(comm, call.ok, nullptr, reduce, ring, "reduce", shared);
}

}  // namespace nodeccl
