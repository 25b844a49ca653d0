// SPDX-License-Identifier: Apache-2.0
// Staged all-reduce over shared memory (see staged.h for the window and its safety rules).
// Rank r owns segment r of the buffer (Segments::split), and:
//   1. stages every other segment of its data into its window (its own segment left out);
//   2. exchanges flags: every rank's copies are in place;
//   3. reduces its own segment, from its own data and every peer's staged copy, in rank order,
//      into the result part of its window;
//   4. exchanges flags: every segment is final in its owner's window;
//   5. copies every owner's result into the caller's buffer.
// (The code numbers its paragraphs by the phases between exchanges: 1 = 1, 2 = 2-3, 3 = 4-5.)
//
// Cost, for n ranks and S bytes per rank: two rounds of one-byte messages (a few microseconds
// each), no other waiting. Memory traffic per rank: (n - 1)/n S copied in, S read and S/n
// written by the reduction, S copied out; about 4.5 S bytes read or written at n = 2, against
// about 5.5 S for the ring, which also waits for its neighbour at each of its 2(n - 1) steps.
// Window: (n - 1)/n S staged plus S/n of result, in each of the two halves that alternate
// calls, so up to 2 S of /dev/shm per rank, backed when first needed and kept until destroy.
//
// Shared arrays (staged.h): a rank whose buffer lies in its shared heap stages nothing (its
// peers read its segments in place) and keeps only its result in its window. When every
// rank's buffer is shared, step 3 instead writes each result straight into every buffer and
// step 5 has nothing left to do (allreduce_shared.cc: about 2 S of traffic per rank).
//
// Every segment is reduced once, by its owner, in rank order: all ranks end bitwise identical.
#include <cstring>

#include "coll/ring.h"
#include "coll/staged.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {

std::unique_ptr<StagedOp> startAllReduceStaged(Communicator& comm, void* data, size_t count,
                                               DataType dtype, ReduceOp op, Millis timeout) {
  const char* kName = "allReduce";
  checkDtype(comm, kName, dtype);
  checkOp(comm, kName, op);
  const size_t elem = dtypeSize(dtype);
  checkedBytes(comm, kName, count, dtypeSize(accumulateType(dtype)));
  checkBuffer(comm, kName, "data", data, count);
  comm.beginOp(OpKind::kAllReduce, timeout, OpParams{int(dtype), int(op), -1, count});
  comm.noteAlgorithm("allReduce", "staged", count * elem);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allReduce staged count=", count, " ",
                dtypeName(dtype), " ", reduceOpName(op));

  const int n = comm.size(), r = comm.rank();
  const Segments seg = Segments::split(count, n);
  auto shared = std::make_shared<StagedShared>();
  shared->mine = sharedOffset(comm, data, count * elem);
  shared->written = true;
  // Rank q's half: segments other than q, packed in order, then q's result 64-byte aligned;
  // when q's buffer is shared, nothing is staged and the result is at 0.
  auto resultAt = [count, seg, elem](int q, bool isShared) {
    return isShared ? 0 : ((count - seg.count(q)) * elem + 63) / 64 * 64;
  };
  auto stagedAt = [seg, elem](int q, int k) {
    return (seg.offset(k) - (k > q ? seg.count(q) : 0)) * elem;
  };
  const bool mineShared = shared->mine >= 0;
  const StagedCall call = beginStaged(comm, resultAt(r, mineShared) + seg.count(r) * elem);
  shared->call = call.id;
  unsigned char* user = stagedBytes(data);
  unsigned char* mine = call.shm->window(r, call.half);
  const bool stream = stagedStreams(comm, 3 * count * elem);  // its data, its window's halves

  // 1. Stage the segments before and after this rank's own (none from a shared buffer).
  if (call.ok && !mineShared) {
    const size_t own = seg.offset(r) * elem, ownEnd = own + seg.count(r) * elem;
    stagedCopy(mine, user, own, stream);
    stagedCopy(mine + own, user + ownEnd, count * elem - ownEnd, stream);
  }
  traceStaging(comm, call, mineShared ? 0 : (count - seg.count(r)) * elem);

  // 2. Once every rank has staged: this rank's segment, reduced from every rank's copy (or
  // shared buffer) into its window; or, when all buffers are shared, into every buffer.
  // (When one could not stage, all take the ring in the same call.)
  Communicator* c = &comm;
  auto reduce = [=] {
    const StagedShared& sh = *shared;
    if (sh.all()) return allReduceSharedPush(*c, sh, count, dtype, op);
    std::vector<const void*> blocks(static_cast<size_t>(n));
    for (int q = 0; q < n; ++q) {
      const size_t k = static_cast<size_t>(q);
      blocks[k] = q == r        ? user + seg.offset(r) * elem
                  : sh.at[k]    ? sh.at[k] + seg.offset(r) * elem
                                : call.shm->window(q, call.half) + stagedAt(q, r);
    }
    reduceBlocksTo(*c, blocks, mine + resultAt(r, mineShared), seg.count(r), dtype, op, stream);
    for (int q = 0; q < n; ++q) sh.checkPeer(*c, q, "reading");
  };

  // 3. Once every segment is final, copy them all out (nothing can fail from here on): this
  // rank's own first, which its reduction just wrote, then the peers' from r + 1 on, so that
  // at any time the ranks read different windows.
  auto copyOut = [=] {
    const StagedShared& sh = *shared;
    if (sh.all()) return;
    for (int j = 0; j < n; ++j) {
      const int k = (r + j) % n;
      const bool isShared = sh.at[static_cast<size_t>(k)] != nullptr;
      stagedCopy(user + seg.offset(k) * elem,
                 call.shm->window(k, call.half) + resultAt(k, isShared), seg.count(k) * elem,
                 stream);
    }
  };
  auto ring = [=] { allReduceRingCore(*c, user, count, dtype, op); };
  return std::make_unique<StagedOp>(comm, call.ok, reduce, copyOut, ring, "copy out", shared);
}

}  // namespace nodeccl
