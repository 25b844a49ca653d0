// SPDX-License-Identifier: Apache-2.0
// Dissemination barrier (Hensgen, Finkel and Manber): no rank leaves before every rank arrived.
//
// Cost, for n ranks: ceil(log2 n) steps; each rank sends ceil(log2 n) messages of 0 payload
// bytes (a header each). On one host over shared memory the direct barrier (barrier_direct.cc)
// takes one round instead; the choice is made here.
#include "backend/mpi/mpi_collectives.h"
#include "coll/collectives.h"
#include "coll/direct.h"
#include "common/log.h"

namespace nodeccl {

void barrier(Communicator& comm, Millis timeout) {
  if (!comm.mpi() && barrierUsesDirect(comm)) return startBarrierDirect(comm, timeout)->finish();
  comm.beginOp(OpKind::kBarrier, timeout);
  if (comm.mpi()) return mpi::barrier(comm);
  comm.noteAlgorithm("barrier", "dissemination", 0);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "barrier dissemination");
  const int n = comm.size(), r = comm.rank();

  // Round k: signal rank r + 2^k and wait for rank r - 2^k. After round k this rank has
  // heard, directly or through the ranks it heard from, from the 2^(k+1) - 1 ranks before it;
  // after ceil(log2 n) rounds, from all of them. The distances 2^k < n are distinct mod n, so
  // no two rounds use the same pair of ranks and the messages cannot be confused.
  unsigned char token = 0;  // 0-byte messages still need a valid address
  for (int dist = 1; dist < n; dist <<= 1) {
    comm.sendRecv((r + dist) % n, &token, 0, (r - dist + n) % n, &token, 0);
  }
}

}  // namespace nodeccl
