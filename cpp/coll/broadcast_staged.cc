// SPDX-License-Identifier: Apache-2.0
// Staged broadcast over shared memory (see staged.h for the window and its safety rules): the
// root copies its data into its window, every rank exchanges flags, then every other rank
// copies the data out of the root's window.
//
// Cost, for n ranks and S bytes: one round of one-byte messages; the root copies S once, every
// other rank copies S once, all at the same time (the chain broadcast forwards S through n - 1
// pairs' ring buffers, two copies per hop). Window: S in each of the root's two halves that
// alternate calls (up to 2 S of /dev/shm on a rank that is root, kept until destroy).
#include <cstring>

#include "coll/ring.h"
#include "coll/staged.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {

std::unique_ptr<StagedOp> startBroadcastStaged(Communicator& comm, void* data, size_t count,
                                               DataType dtype, int root, Millis timeout) {
  const size_t bytes = beginBroadcast(comm, data, count, dtype, root, timeout, "staged");

  unsigned char* user = stagedBytes(data);
  const bool isRoot = comm.rank() == root;
  // Only the root's buffer is read by others: a shared one is read in place, not staged.
  auto shared = std::make_shared<StagedShared>();
  shared->mine = isRoot ? sharedOffset(comm, data, bytes) : -1;
  const bool stages = isRoot && shared->mine < 0;
  const StagedCall call = beginStaged(comm, stages ? bytes : 0);
  shared->call = call.id;
  const bool stream = stagedStreams(comm, 2 * bytes);  // each buffer; the root's window halves
  if (call.ok && stages) stagedCopy(call.shm->window(root, call.half), user, bytes, stream);
  traceStaging(comm, call, stages ? bytes : 0);

  Communicator* c = &comm;
  auto copyOut = [=] {
    if (isRoot) return;
    const unsigned char* from = shared->at[size_t(root)];
    stagedCopy(user, from ? from : call.shm->window(root, call.half), bytes, stream);
    shared->checkPeer(*c, root, "reading");
  };
  auto ring = [=] { broadcastChain(*c, user, bytes, root); };
  return std::make_unique<StagedOp>(comm, call.ok, nullptr, copyOut, ring, "copy out", shared);
}

}  // namespace nodeccl
