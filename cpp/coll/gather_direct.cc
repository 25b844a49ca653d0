// SPDX-License-Identifier: Apache-2.0
// Direct gather and scatter: the root exchanges one message with every other rank.
//
// Cost, for n ranks and blocks of S bytes: gather, n - 1 messages of S bytes into the root,
// received in rank order (each rank sends S once); scatter, n - 1 messages of S bytes out of
// the root. The root's link carries (n - 1) * S, which is the least any algorithm moves through
// it. The gather root receives into scratch and copies at the end, so a failed call leaves
// `out` unchanged; scatter receivers do the same with their block.
#include <cstring>

#include "backend/mpi/mpi_collectives.h"
#include "coll/collectives.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {

void gather(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
            int root, Millis timeout) {
  const char* kName = "gather";
  const int n = comm.size(), r = comm.rank();
  checkDtype(comm, kName, dtype);
  checkRoot(comm, kName, root);
  const size_t elem = dtypeSize(dtype);
  const size_t bytes = checkedBytes(comm, kName, count, elem);
  checkedBytes(comm, kName, count, elem, static_cast<size_t>(n));
  checkBuffer(comm, kName, "input", in, count);
  if (r == root) checkBuffer(comm, kName, "output", out, count);
  comm.beginOp(OpKind::kGather, timeout, OpParams{int(dtype), -1, root, count});
  if (comm.mpi()) return mpi::gather(comm, in, out, count, dtype, root);
  NODECCL_TRACE("coll", r, n, "gather direct count=", count, " root=", root);

  unsigned char empty = 0;
  in = orEmpty(in, empty);
  if (r != root) {
    comm.send(root, in, bytes);
    return;
  }
  unsigned char* work = scratchBytes(comm, bytes * static_cast<size_t>(n), kSlotOut);
  for (int p = 0; p < n; ++p) {
    if (p == r) {
      if (bytes > 0) std::memcpy(work + p * bytes, in, bytes);
    } else {
      comm.recv(p, bytes > 0 ? work + p * bytes : &empty, bytes);
    }
  }
  if (bytes > 0) std::memcpy(out, work, bytes * static_cast<size_t>(n));
}

void scatter(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
             int root, Millis timeout) {
  const char* kName = "scatter";
  const int n = comm.size(), r = comm.rank();
  checkDtype(comm, kName, dtype);
  checkRoot(comm, kName, root);
  const size_t elem = dtypeSize(dtype);
  const size_t bytes = checkedBytes(comm, kName, count, elem);
  checkedBytes(comm, kName, count, elem, static_cast<size_t>(n));
  if (r == root) checkBuffer(comm, kName, "input", in, count);
  checkBuffer(comm, kName, "output", out, count);
  comm.beginOp(OpKind::kScatter, timeout, OpParams{int(dtype), -1, root, count});
  if (comm.mpi()) return mpi::scatter(comm, in, out, count, dtype, root);
  NODECCL_TRACE("coll", r, n, "scatter direct count=", count, " root=", root);

  unsigned char empty = 0;
  if (r != root) {
    unsigned char* tmp = scratchBytes(comm, bytes, kSlotOut);
    comm.recv(root, tmp, bytes);
    if (bytes > 0) std::memcpy(out, tmp, bytes);
    return;
  }
  const auto* src = static_cast<const unsigned char*>(in);
  for (int p = 0; p < n; ++p) {
    if (p != r) comm.send(p, bytes > 0 ? src + p * bytes : &empty, bytes);
  }
  if (bytes > 0) std::memcpy(out, src + r * bytes, bytes);
}

}  // namespace nodeccl
