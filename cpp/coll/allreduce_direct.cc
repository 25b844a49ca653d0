// SPDX-License-Identifier: Apache-2.0
// Direct all-reduce, the small-message path: every rank sends its whole buffer to every other
// rank, then reduces the n buffers in rank order 0..n-1 (so every rank computes bitwise the
// same result).
//
// Cost, for n ranks and S bytes per rank: one round (n - 1 exchanges, all in flight at once
// through shared memory); each rank sends and receives (n - 1) * S bytes and reduces
// (n - 1) * S. Latency-optimal, bandwidth-poor: used for small S (kDirectMaxBytes).
//
// The user's buffer is written once, at the end: a call that fails leaves it as it was.
#include <memory>

#include "coll/direct.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {
namespace {

// Above this many bytes per rank the ring's 2(n - 1)/n * S beats the direct (n - 1) * S.
constexpr size_t kDirectMaxBytes = 32 * 1024;

}  // namespace

bool allReduceUsesDirect(const Communicator& comm, size_t count, DataType dtype) {
  const std::string& algo = comm.options().algo;
  if (algo == "direct") return true;
  if (algo == "ring" || algo == "hier" || algo == "staged") return false;
  return count * dtypeSize(dtype) <= kDirectMaxBytes;
}

std::unique_ptr<DirectExchange> startAllReduceDirect(Communicator& comm, void* data,
                                                     size_t count, DataType dtype, ReduceOp op,
                                                     Millis timeout) {
  const char* kName = "allReduce";
  checkDtype(comm, kName, dtype);
  checkOp(comm, kName, op);
  const size_t n = static_cast<size_t>(comm.size());
  const size_t bytes = checkedBytes(comm, kName, count, dtypeSize(dtype), n) / n;
  checkBuffer(comm, kName, "data", data, count);
  comm.beginOp(OpKind::kAllReduce, timeout, OpParams{int(dtype), int(op), -1, count});
  comm.noteAlgorithm("allReduce", "direct", bytes);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allReduce direct count=", count, " ",
                dtypeName(dtype), " ", reduceOpName(op));

  // Every peer's buffer arrives in its own scratch block; this rank's own is `data` itself.
  auto ex = std::make_unique<DirectExchange>(comm);
  unsigned char* recvd = scratchBytes(comm, bytes * n, kSlotRecvA);
  std::vector<const void*> blocks(n);
  for (int q = 0; q < comm.size(); ++q) {
    blocks[static_cast<size_t>(q)] = q == comm.rank() ? data : recvd + bytes * size_t(q);
    if (q == comm.rank()) continue;
    ex->send(q, data, bytes);
    ex->recv(q, recvd + bytes * size_t(q), bytes);
  }
  Communicator* c = &comm;
  ex->onComplete([c, blocks, data, count, dtype, op] {
    reduceInRankOrder(*c, blocks, data, count, dtype, op);
  });
  return ex;
}

}  // namespace nodeccl
