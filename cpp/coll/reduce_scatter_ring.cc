// SPDX-License-Identifier: Apache-2.0
// Ring reduce-scatter: the reduce-scatter phase shared with allReduce, and the public
// reduceScatter built on it.
//
// Cost, for n ranks and an input of S bytes per rank (n blocks of S/n): n - 1 steps; each rank
// sends and receives (n - 1)/n * S bytes and reduces as many. float16/bfloat16 travel and are
// reduced as float32 partials, so they send twice that, and round once at the end.
//
// Each step moves in chunks of kChunkBytes: while this rank reduces chunk c, its left
// neighbour is already writing chunk c + 1 (into the shared-memory ring or the socket
// buffers), so transfer and reduction overlap. `out` is written only at the end.
// Small reduce-scatters take the direct exchange instead (reduce_scatter_direct.cc), chosen here.
#include <algorithm>
#include <cstring>

#include "backend/mpi/mpi_collectives.h"
#include "coll/collectives.h"
#include "coll/direct.h"
#include "coll/ring.h"
#include "coll/staged.h"
#include "coll/validate.h"
#include "common/error.h"
#include "common/log.h"
#include "reduce/reduce.h"

namespace nodeccl {

void ringReduceScatter(Communicator& comm, const void* in, void* out, const Segments& seg,
                       DataType dtype, ReduceOp op) {
  const int n = comm.size(), r = comm.rank();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  const size_t elem = dtypeSize(dtype);
  const auto* src = static_cast<const unsigned char*>(in);
  auto mod = [n](int i) { return ((i % n) + n) % n; };

  // Partials arrive in two buffers used in turn: while one is being received into, the other
  // holds the partial received at the previous step, which is what this step sends on.
  unsigned char* recvBuf[2] = {scratchBytes(comm, seg.maxCount() * elem, kSlotRecvA),
                               scratchBytes(comm, seg.maxCount() * elem, kSlotRecvB)};

  // Step s sends the partial of segment r-1-s and receives the partial of segment r-2-s,
  // then adds this rank's own contribution to it. The chain for segment k starts at rank k+1
  // with its input alone (so step 0 sends straight from `in`) and ends at rank k after n - 1
  // steps; every segment is reduced along one chain in one order, so the result is the same
  // whichever rank later reads it.
  const unsigned char* sendPtr = src + seg.offset(mod(r - 1)) * elem;
  for (int s = 0; s < n - 1; ++s) {
    const int sendSeg = mod(r - 1 - s), recvSeg = mod(r - 2 - s);
    unsigned char* rbuf = recvBuf[s % 2];
    const size_t sendCount = seg.count(sendSeg), recvCount = seg.count(recvSeg);
    const unsigned char* mine = src + seg.offset(recvSeg) * elem;
    // Chunk c of both directions at once. Every rank cuts every segment into the same number
    // of chunks (from the largest segment), so the two ends of a link agree on the messages.
    const size_t chunk = std::max<size_t>(1, kChunkBytes / elem);
    for (size_t c = 0; c == 0 || c < seg.maxCount(); c += chunk) {
      size_t sc = c < sendCount ? std::min(chunk, sendCount - c) : 0;
      size_t rc = c < recvCount ? std::min(chunk, recvCount - c) : 0;
      comm.sendRecv(next, sendPtr + std::min(c, sendCount) * elem, sc * elem, prev,
                    rbuf + std::min(c, recvCount) * elem, rc * elem);
      if (rc > 0) reduceInto(rbuf + c * elem, mine + c * elem, rc, dtype, op);
    }
    sendPtr = rbuf;
  }

  // The last partial received is segment r, complete. With one rank it is the input itself.
  const unsigned char* result = n == 1 ? src + seg.offset(r) * elem : sendPtr;
  const size_t bytes = seg.count(r) * elem;
  if (bytes > 0 && result != out) std::memmove(out, result, bytes);
}

namespace {

// Half types: widen the whole input to float32, reduce-scatter in float32, divide for avg,
// and round this rank's block once into `out`.
void reduceScatterHalf(Communicator& comm, const void* in, void* out, size_t count,
                       DataType dtype, ReduceOp op) {
  const int n = comm.size();
  const size_t total = count * static_cast<size_t>(n);
  auto* wide = reinterpret_cast<float*>(scratchBytes(comm, total * sizeof(float), kSlotWork));
  toFloat32(in, wide, total, dtype);

  const Segments seg = Segments::blocks(count);
  float* own = wide + seg.offset(comm.rank());
  ringReduceScatter(comm, wide, own, seg, DataType::kFloat32, op);
  if (op == ReduceOp::kAvg) divideInPlace(own, count, DataType::kFloat32, n);
  fromFloat32(own, out, count, dtype);
}

}  // namespace

void reduceScatterRingCore(Communicator& comm, const void* in, void* out, size_t count,
                           DataType dtype, ReduceOp op) {
  if (isHalfType(dtype)) return reduceScatterHalf(comm, in, out, count, dtype, op);
  ringReduceScatter(comm, in, out, Segments::blocks(count), dtype, op);
  if (op == ReduceOp::kAvg) divideInPlace(out, count, dtype, comm.size());
}

void reduceScatter(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
                   ReduceOp op, Millis timeout) {
  const char* kName = "reduceScatter";
  checkDtype(comm, kName, dtype);
  checkOp(comm, kName, op);
  checkedBytes(comm, kName, count, dtypeSize(accumulateType(dtype)),
               static_cast<size_t>(comm.size()));
  checkBuffer(comm, kName, "input", in, count);
  checkBuffer(comm, kName, "output", out, count);
  checkPartOfWhole(comm, kName, "output", out, "input", in, count * dtypeSize(dtype));
  if (!comm.mpi() && reduceScatterUsesDirect(comm, count, dtype)) {
    return startReduceScatterDirect(comm, in, out, count, dtype, op, timeout)->finish();
  }
  if (!comm.mpi() && usesStaged(comm)) {
    return startReduceScatterStaged(comm, in, out, count, dtype, op, timeout)->finish();
  }
  comm.beginOp(OpKind::kReduceScatter, timeout, OpParams{int(dtype), int(op), -1, count});
  if (comm.mpi()) return mpi::reduceScatter(comm, in, out, count, dtype, op);
  comm.noteAlgorithm("reduceScatter", "ring",
                     count * dtypeSize(dtype) * static_cast<size_t>(comm.size()));
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "reduceScatter ring count=", count, " ",
                dtypeName(dtype), " ", reduceOpName(op));

  unsigned char emptyIn = 0, emptyOut = 0;
  in = orEmpty(in, emptyIn);
  out = orEmpty(out, emptyOut);
  reduceScatterRingCore(comm, in, out, count, dtype, op);
}

}  // namespace nodeccl
