// SPDX-License-Identifier: Apache-2.0
// Ring all-reduce: a ring reduce-scatter, then a ring all-gather, over n segments of the buffer.
//
// Cost, for n ranks and S bytes per rank: 2(n - 1) steps; each rank sends and receives
// 2(n - 1)/n * S bytes and reduces (n - 1)/n * S. float16/bfloat16 send their reduce-scatter
// half as float32 partials: 3(n - 1)/n * S bytes in all. Bandwidth-optimal for large S; for
// small S the 2(n - 1) latencies dominate.
//
// Not yet: a chunked, pipelined ring for large S and a latency-bound algorithm (recursive
// doubling, or a shared-memory flag exchange) for small S come in a later change.
#include "coll/collectives.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/log.h"
#include "reduce/reduce.h"

namespace nodeccl {
namespace {

// Every rank ends bitwise identical: each segment is reduced once, along one chain in one
// order (ringReduceScatter), by its owner; the all-gather then only copies bytes.
void allReduceDirect(Communicator& comm, void* data, size_t count, DataType dtype,
                     ReduceOp op) {
  const Segments seg = Segments::split(count, comm.size());
  const size_t elem = dtypeSize(dtype);
  void* own = static_cast<unsigned char*>(data) + seg.offset(comm.rank()) * elem;

  // Phase 1: this rank's segment becomes op over all ranks (avg: sum, then divide here).
  ringReduceScatter(comm, data, own, seg, dtype, op);
  if (op == ReduceOp::kAvg) divideInPlace(own, seg.count(comm.rank()), dtype, comm.size());

  // Phase 2: every segment travels around the ring from its owner.
  ringAllGather(comm, data, seg, elem);
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
  fromFloat32(own, static_cast<unsigned char*>(data) + seg.offset(r) * elem, seg.count(r), dtype);

  ringAllGather(comm, data, seg, elem);
}

}  // namespace

void allReduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op,
               Millis timeout) {
  const char* kName = "allReduce";
  checkDtype(comm, kName, dtype);
  checkOp(comm, kName, op);
  checkedBytes(comm, kName, count, dtypeSize(accumulateType(dtype)));
  checkBuffer(comm, kName, "data", data, count);
  comm.beginOp(OpKind::kAllReduce, timeout);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "allReduce ring count=", count, " ",
                dtypeName(dtype), " ", reduceOpName(op));

  unsigned char empty = 0;
  data = orEmpty(data, empty);
  if (isHalfType(dtype)) return allReduceHalf(comm, data, count, dtype, op);
  allReduceDirect(comm, data, count, dtype, op);
}

}  // namespace nodeccl
