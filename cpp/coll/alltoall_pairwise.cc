// SPDX-License-Identifier: Apache-2.0
// Pairwise-exchange all-to-all with per-peer counts (even and uneven splits).
//
// Cost, for n ranks where this rank sends S bytes in all and receives R: n - 1 steps; at step s
// each rank sends its block for rank + s and receives the block of rank - s at once, so every
// rank sends S minus its own block and receives R minus its own block, and no step waits on a
// rank that is not itself exchanging. The own block is a local copy. Receives land in scratch,
// copied to `out` at the end (one extra pass over R), so a failed call leaves `out` unchanged.
#include <cstring>

#include "backend/mpi/mpi_collectives.h"
#include "coll/collectives.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/error.h"
#include "common/log.h"

namespace nodeccl {
namespace {

// Prefix sums of `counts` (n + 1 entries), checking the total fits in size_t bytes.
std::vector<size_t> offsets(const Communicator& comm, const char* arg,
                            const std::vector<size_t>& counts, size_t elem) {
  std::vector<size_t> off(counts.size() + 1, 0);
  for (size_t p = 0; p < counts.size(); ++p) {
    checkedBytes(comm, "allToAll", counts[p], elem);
    off[p + 1] = off[p] + counts[p];
    if (off[p + 1] < off[p]) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("rank ", comm.rank(), ": allToAll ", arg,
                         " sum overflows; pass smaller counts"));
    }
  }
  checkedBytes(comm, "allToAll", off.back(), elem);
  return off;
}

}  // namespace

void allToAll(Communicator& comm, const void* in, const std::vector<size_t>& sendCounts,
              void* out, const std::vector<size_t>& recvCounts, DataType dtype,
              Millis timeout) {
  const char* kName = "allToAll";
  const int n = comm.size(), r = comm.rank();
  checkDtype(comm, kName, dtype);
  for (const auto* v : {&sendCounts, &recvCounts}) {
    if (v->size() != static_cast<size_t>(n)) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat("rank ", r, ": allToAll ", v == &sendCounts ? "sendCounts" : "recvCounts",
                         " has ", v->size(), " entries; pass one per rank (", n, ")"));
    }
  }
  const size_t elem = dtypeSize(dtype);
  const std::vector<size_t> soff = offsets(comm, "sendCounts", sendCounts, elem);
  const std::vector<size_t> roff = offsets(comm, "recvCounts", recvCounts, elem);
  checkBuffer(comm, kName, "input", in, soff.back());
  checkBuffer(comm, kName, "output", out, roff.back());
  if (sendCounts[r] != recvCounts[r]) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", r, ": allToAll sendCounts[", r, "] = ", sendCounts[r],
                       " but recvCounts[", r, "] = ", recvCounts[r],
                       "; this rank's block to itself must be the same size both ways"));
  }
  // Per-peer counts differ, so the header carries no common count; sizes are still checked
  // message by message (the receiver expects recvCounts[p] elements from p).
  comm.beginOp(OpKind::kAllToAll, timeout, OpParams{int(dtype), -1, -1, 0});
  if (comm.mpi()) return mpi::allToAll(comm, in, sendCounts, out, recvCounts, dtype);
  NODECCL_TRACE("coll", r, n, "allToAll pairwise send=", soff.back(), " recv=", roff.back(),
                " ", dtypeName(dtype));

  const auto* src = static_cast<const unsigned char*>(in);
  const size_t total = roff.back() * elem;
  unsigned char* work = scratchBytes(comm, total, kSlotOut);
  if (recvCounts[r] > 0) {
    std::memcpy(work + roff[r] * elem, src + soff[r] * elem, recvCounts[r] * elem);
  }
  unsigned char empty = 0;
  for (int s = 1; s < n; ++s) {
    const int to = (r + s) % n, from = (r - s + n) % n;
    const void* sbuf = sendCounts[to] > 0 ? src + soff[to] * elem : &empty;
    void* rbuf = recvCounts[from] > 0 ? work + roff[from] * elem : &empty;
    comm.sendRecv(to, sbuf, sendCounts[to] * elem, from, rbuf, recvCounts[from] * elem);
  }
  if (total > 0) std::memcpy(out, work, total);
}

}  // namespace nodeccl
