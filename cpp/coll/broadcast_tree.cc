// SPDX-License-Identifier: Apache-2.0
// Binomial-tree broadcast from any root.
//
// Cost, for n ranks and S bytes: ceil(log2 n) steps. The root sends S to ceil(log2 n)
// children, every other rank receives S once and sends it to at most ceil(log2 n) - 1 more.
// Latency-optimal; for large S the root's link carries log2(n) * S.
//
// Non-roots receive into scratch and copy into the user's buffer after their last send, so a
// call that fails midway leaves it unchanged (one extra pass over S).
//
// Large broadcasts on more than two ranks take the pipelined chain instead
// (broadcast_chain.cc), and tiny ones the direct send from the root (broadcast_direct.cc):
// the choice is made here, by size, unless NODECCL_ALGO forces one.
#include <cstring>

#include "backend/mpi/mpi_collectives.h"
#include "coll/collectives.h"
#include "coll/direct.h"
#include "coll/ring.h"
#include "coll/staged.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {
namespace {

// Above this many bytes (and with more than two ranks) the chain's S per link beats the tree.
constexpr size_t kChainMinBytes = 64 * 1024;

bool useChain(const Communicator& comm, size_t bytes) {
  const std::string& algo = comm.options().algo;
  if (algo == "chain" || algo == "ring") return true;
  if (algo == "tree") return false;
  return comm.size() > 2 && bytes > kChainMinBytes;
}

}  // namespace

// Ranks are renumbered relative to the root (v = rank - root mod n), so the root is v = 0.
// Rank v receives from v - lowbit(v) and sends to v + m for every power of two m < lowbit(v)
// (every m, for the root), largest first, so the data reaches the far half of the tree soonest.
void broadcastTree(Communicator& comm, void* user, size_t bytes, int root) {
  const int n = comm.size();
  const int v = (comm.rank() - root + n) % n;
  auto real = [&](int u) { return (u + root) % n; };
  void* data = v == 0 ? user : scratchBytes(comm, bytes, kSlotOut);

  // Receive once from the parent (the root has none): m ends at lowbit(v), or >= n for v = 0.
  int m = 1;
  while (m < n) {
    if (v & m) {
      comm.recv(real(v - m), data, bytes);
      break;
    }
    m <<= 1;
  }

  // Forward to the children v + m/2, v + m/4, ..., v + 1 that exist.
  for (m >>= 1; m > 0; m >>= 1) {
    if (v + m < n) comm.send(real(v + m), data, bytes);
  }
  if (v != 0 && bytes > 0) std::memcpy(user, data, bytes);
}

void broadcast(Communicator& comm, void* data, size_t count, DataType dtype, int root,
               Millis timeout) {
  const char* kName = "broadcast";
  checkDtype(comm, kName, dtype);
  checkRoot(comm, kName, root);
  const size_t bytes = checkedBytes(comm, kName, count, dtypeSize(dtype));
  checkBuffer(comm, kName, "data", data, count);
  if (!comm.mpi() && broadcastUsesDirect(comm, count, dtype)) {
    return startBroadcastDirect(comm, data, count, dtype, root, timeout)->finish();
  }
  if (!comm.mpi() && usesStaged(comm)) {
    return startBroadcastStaged(comm, data, count, dtype, root, timeout)->finish();
  }
  comm.beginOp(OpKind::kBroadcast, timeout, OpParams{int(dtype), -1, root, count});
  if (comm.mpi()) return mpi::broadcast(comm, data, count, dtype, root);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "broadcast count=", count, " ",
                dtypeName(dtype), " root=", root);
  unsigned char empty = 0;
  comm.noteAlgorithm("broadcast", useChain(comm, bytes) ? "chain" : "tree", bytes);
  if (useChain(comm, bytes)) return broadcastChain(comm, orEmpty(data, empty), bytes, root);
  broadcastTree(comm, orEmpty(data, empty), bytes, root);
}

}  // namespace nodeccl
