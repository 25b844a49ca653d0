// SPDX-License-Identifier: Apache-2.0
// Binomial-tree reduce to any root; the other ranks' buffers are left unchanged.
//
// Cost, for n ranks and S bytes: ceil(log2 n) steps. Every rank but the root sends S once; a
// rank receives and reduces S from each of its children (the root: ceil(log2 n) of them).
// float16/bfloat16 partials travel as float32 (2S) and the root rounds once.
//
// Not yet: for large S, reduce-scatter + gather (~2S per rank, the work spread over all
// ranks) beats the tree; that is a later change.
#include <cstring>

#include "backend/mpi/mpi_collectives.h"
#include "coll/collectives.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/log.h"
#include "reduce/reduce.h"

namespace nodeccl {
namespace {

// Where this rank builds its partial result: a scratch copy (float32 for a half type) on the
// root and on every rank with children, since `data` must stay unchanged until the root's
// result is complete; a leaf only sends, so it sends `data` as it is.
unsigned char* startPartial(Communicator& comm, void* data, size_t count, DataType dtype,
                            bool isRoot, bool hasChildren) {
  if (isHalfType(dtype)) {
    auto* wide = scratchBytes(comm, count * sizeof(float), kSlotWork);
    toFloat32(data, reinterpret_cast<float*>(wide), count, dtype);
    return wide;
  }
  if (!isRoot && !hasChildren) return static_cast<unsigned char*>(data);
  const size_t bytes = count * dtypeSize(dtype);
  auto* copy = scratchBytes(comm, bytes, kSlotWork);
  if (bytes > 0) std::memcpy(copy, data, bytes);
  return copy;
}

}  // namespace

// Ranks are renumbered relative to the root (v = rank - root mod n). Rank v first collects
// from its children v + 1, v + 2, v + 4, ... (each the root of a subtree, smallest first),
// then sends its partial to its parent v - lowbit(v).
void reduceTree(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op,
                int root) {
  const int n = comm.size();
  const int v = (comm.rank() - root + n) % n;
  auto real = [&](int u) { return (u + root) % n; };
  const DataType wire = accumulateType(dtype);
  const size_t bytes = count * dtypeSize(wire);
  const bool hasChildren = v % 2 == 0 && v + 1 < n;
  unsigned char* acc = startPartial(comm, data, count, dtype, v == 0, hasChildren);
  unsigned char* incoming = hasChildren ? scratchBytes(comm, bytes, kSlotRecvA) : nullptr;

  for (int m = 1; m < n; m <<= 1) {
    if (v & m) {
      comm.send(real(v - m), acc, bytes);
      return;
    }
    if (v + m < n) {
      comm.recv(real(v + m), incoming, bytes);
      reduceInto(acc, incoming, count, wire, op);
    }
  }

  // Only the root gets here: finish avg and round a half type once.
  if (op == ReduceOp::kAvg) divideInPlace(acc, count, wire, n);
  if (isHalfType(dtype)) fromFloat32(reinterpret_cast<float*>(acc), data, count, dtype);
  else if (bytes > 0) std::memcpy(data, acc, bytes);
}

void reduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op, int root,
            Millis timeout) {
  const char* kName = "reduce";
  checkDtype(comm, kName, dtype);
  checkOp(comm, kName, op);
  checkRoot(comm, kName, root);
  checkedBytes(comm, kName, count, dtypeSize(accumulateType(dtype)));
  checkBuffer(comm, kName, "data", data, count);
  comm.beginOp(OpKind::kReduce, timeout, OpParams{int(dtype), int(op), root, count});
  if (comm.mpi()) return mpi::reduce(comm, data, count, dtype, op, root);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "reduce tree count=", count, " ",
                dtypeName(dtype), " ", reduceOpName(op), " root=", root);
  unsigned char empty = 0;
  reduceTree(comm, orEmpty(data, empty), count, dtype, op, root);
}

}  // namespace nodeccl
