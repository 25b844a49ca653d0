// SPDX-License-Identifier: Apache-2.0
// Ring all-reduce: a ring reduce-scatter, then a ring all-gather, over n segments of the buffer.
//
// Cost, for n ranks and S bytes per rank: 2(n - 1) steps; each rank sends and receives
// 2(n - 1)/n * S bytes and reduces (n - 1)/n * S. float16/bfloat16 send their reduce-scatter
// half as float32 partials: 3(n - 1)/n * S bytes in all. Bandwidth-optimal for large S; for
// small S the 2(n - 1) latencies dominate (allreduce_direct.cc takes those), and over shared
// memory allreduce_staged.cc moves fewer bytes. Each step moves in chunks (ringReduceScatter),
// so reducing one chunk overlaps receiving the next.
//
// The result is gathered in a scratch buffer and copied into the user's buffer at the very end,
// so a call that fails midway leaves the user's data as it was. The price is one memcpy of S:
// measured at 2 ranks over shared memory, 19 us of 123 us at 1 MiB and 0.75 ms of 3.3 ms at
// 16 MiB (about a sixth to a quarter of the call). Any write to the user's buffer before the
// last receive would break the guarantee, so the result must be staged somewhere.
#include <cstring>

#include "backend/mpi/mpi_collectives.h"
#include "coll/collectives.h"
#include "coll/direct.h"
#include "coll/ring.h"
#include "coll/staged.h"
#include "coll/validate.h"
#include "common/log.h"
#include "reduce/reduce.h"

namespace nodeccl {
namespace {

// Every rank ends bitwise identical: each segment is reduced once, along one chain in one
// order (ringReduceScatter), by its owner; the all-gather then only copies bytes.
void allReduceRing(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op) {
  const Segments seg = Segments::split(count, comm.size());
  const size_t elem = dtypeSize(dtype);
  unsigned char* out = scratchBytes(comm, count * elem, kSlotOut);
  void* own = out + seg.offset(comm.rank()) * elem;

  // Phase 1: this rank's segment of `out` becomes op over all ranks (avg: sum, then divide).
  ringReduceScatter(comm, data, own, seg, dtype, op);
  if (op == ReduceOp::kAvg) divideInPlace(own, seg.count(comm.rank()), dtype, comm.size());

  // Phase 2: every segment travels around the ring from its owner; then the result is final.
  ringAllGather(comm, out, seg, elem);
  if (count > 0) std::memcpy(data, out, count * elem);
}

// Half types round once: widen to float32, reduce-scatter in float32 (float32 partials on the
// wire), divide for avg, round this rank's segment back into `data`, all-gather in half.
void allReduceHalf(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op) {
  const Segments seg = Segments::split(count, comm.size());
  const int r = comm.rank();
  const size_t elem = dtypeSize(dtype);  // 2
  auto* wide = reinterpret_cast<float*>(scratchBytes(comm, count * sizeof(float), kSlotWork));
  toFloat32(data, wide, count, dtype);

  float* own = wide + seg.offset(r);
  ringReduceScatter(comm, wide, own, seg, DataType::kFloat32, op);
  if (op == ReduceOp::kAvg) divideInPlace(own, seg.count(r), DataType::kFloat32, comm.size());
  unsigned char* out = scratchBytes(comm, count * elem, kSlotOut);
  fromFloat32(own, out + seg.offset(r) * elem, seg.count(r), dtype);

  ringAllGather(comm, out, seg, elem);
  if (count > 0) std::memcpy(data, out, count * elem);
}

}  // namespace

void allReduceRingCore(Communicator& comm, void* data, size_t count, DataType dtype,
                       ReduceOp op) {
  if (isHalfType(dtype)) return allReduceHalf(comm, data, count, dtype, op);
  allReduceRing(comm, data, count, dtype, op);
}

void allReduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op,
               Millis timeout) {
  const char* kName = "allReduce";
  checkDtype(comm, kName, dtype);
  checkOp(comm, kName, op);
  checkedBytes(comm, kName, count, dtypeSize(accumulateType(dtype)));
  checkBuffer(comm, kName, "data", data, count);
  if (comm.mpi()) return mpi::allReduce(comm, data, count, dtype, op, timeout);
  if (allReduceUsesHier(comm)) return allReduceAcrossHosts(comm, data, count, dtype, op, timeout);
  if (allReduceUsesDirect(comm, count, dtype)) {
    return startAllReduceDirect(comm, data, count, dtype, op, timeout)->finish();
  }
  if (usesStaged(comm)) {
    return startAllReduceStaged(comm, data, count, dtype, op, timeout)->finish();
  }
  comm.beginOp(OpKind::kAllReduce, timeout, OpParams{int(dtype), int(op), -1, count});
  comm.noteAlgorithm("allReduce", "ring", count * dtypeSize(dtype));
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allReduce ring count=", count, " ",
                dtypeName(dtype), " ", reduceOpName(op));

  unsigned char empty = 0;
  data = orEmpty(data, empty);
  allReduceRingCore(comm, data, count, dtype, op);
}

}  // namespace nodeccl
