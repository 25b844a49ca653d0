// SPDX-License-Identifier: Apache-2.0
// Ring all-gather: the all-gather phase shared with allReduce, and the public allGather.
//
// Cost, for n ranks and an output of S bytes (n blocks of S/n): n - 1 steps; each rank sends
// and receives (n - 1)/n * S bytes. The public allGather runs the ring in scratch and copies
// the result out at the end (one extra pass over S), so a failed call leaves `out` unchanged.
// Small all-gathers take the direct exchange instead (allgather_direct.cc), and larger ones over
// shared memory the staged algorithm (allgather_staged.cc), both chosen here.
#include <cstring>

#include "backend/mpi/mpi_collectives.h"
#include "coll/collectives.h"
#include "coll/direct.h"
#include "coll/ring.h"
#include "coll/staged.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {

void ringAllGather(Communicator& comm, void* buf, const Segments& seg, size_t elemBytes) {
  const int n = comm.size(), r = comm.rank();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  auto* base = static_cast<unsigned char*>(buf);
  auto mod = [n](int i) { return ((i % n) + n) % n; };

  // Step s forwards segment r-s (this rank's own at step 0, else the one received at step s-1)
  // and receives segment r-s-1 in place. After n - 1 steps all n segments have arrived.
  for (int s = 0; s < n - 1; ++s) {
    const int sendSeg = mod(r - s), recvSeg = mod(r - s - 1);
    comm.sendRecv(next, base + seg.offset(sendSeg) * elemBytes, seg.count(sendSeg) * elemBytes,
                  prev, base + seg.offset(recvSeg) * elemBytes, seg.count(recvSeg) * elemBytes);
  }
}

// The ring runs in scratch, copied into `out` at the end: a failed call leaves `out` as it was.
void allGatherRingCore(Communicator& comm, const void* in, void* out, size_t count,
                       DataType dtype) {
  const size_t elem = dtypeSize(dtype);
  const Segments seg = Segments::blocks(count);
  const size_t total = count * elem * static_cast<size_t>(comm.size());
  unsigned char* work = scratchBytes(comm, total, kSlotOut);
  if (count > 0) std::memcpy(work + seg.offset(comm.rank()) * elem, in, count * elem);
  ringAllGather(comm, work, seg, elem);
  if (total > 0) std::memcpy(out, work, total);
}

void allGather(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
               Millis timeout) {
  const char* kName = "allGather";
  checkDtype(comm, kName, dtype);
  const size_t elem = dtypeSize(dtype);
  checkedBytes(comm, kName, count, elem, static_cast<size_t>(comm.size()));
  checkBuffer(comm, kName, "input", in, count);
  checkBuffer(comm, kName, "output", out, count);
  checkPartOfWhole(comm, kName, "input", in, "output", out, count * dtypeSize(dtype));
  if (!comm.mpi() && allGatherUsesDirect(comm, count, dtype)) {
    return startAllGatherDirect(comm, in, out, count, dtype, timeout)->finish();
  }
  if (!comm.mpi() && usesStaged(comm)) {
    return startAllGatherStaged(comm, in, out, count, dtype, timeout)->finish();
  }
  comm.beginOp(OpKind::kAllGather, timeout, OpParams{int(dtype), -1, -1, count});
  if (comm.mpi()) return mpi::allGather(comm, in, out, count, dtype);
  comm.noteAlgorithm("allGather", "ring", count * elem * static_cast<size_t>(comm.size()));
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allGather ring count=", count, " ",
                dtypeName(dtype));

  unsigned char emptyIn = 0, emptyOut = 0;
  in = orEmpty(in, emptyIn);
  out = orEmpty(out, emptyOut);
  allGatherRingCore(comm, in, out, count, dtype);
}

}  // namespace nodeccl
