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
  const StagedCall call = beginStaged(comm, isRoot ? bytes : 0);
  const bool stream = stagedStreams(comm, bytes);  // every rank's buffer
  if (call.ok && isRoot) stagedCopy(call.shm->window(root, call.half), user, bytes, stream);
  traceStaging(comm, call, isRoot ? bytes : 0);

  auto copyOut = [=] {
    if (!isRoot) stagedCopy(user, call.shm->window(root, call.half), bytes, stream);
  };
  Communicator* c = &comm;
  auto ring = [=] { broadcastChain(*c, user, bytes, root); };
  return std::make_unique<StagedOp>(comm, call.ok, nullptr, copyOut, ring, "copy out");
}

}  // namespace nodeccl
