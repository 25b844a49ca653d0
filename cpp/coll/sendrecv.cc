// SPDX-License-Identifier: Apache-2.0
// Point-to-point send and receive between two ranks.
//
// Cost: one message of S bytes from the sender to the receiver; both must pass the same count
// and dtype (the receiver checks the byte count in the message header).
#include <cstring>

#include "backend/mpi/mpi_collectives.h"
#include "coll/collectives.h"
#include "coll/ring.h"
#include "coll/validate.h"
#include "common/log.h"

namespace nodeccl {

void send(Communicator& comm, const void* data, size_t count, DataType dtype, int peer,
          Millis timeout) {
  const char* kName = "send";
  checkDtype(comm, kName, dtype);
  checkPeer(comm, kName, peer);
  const size_t bytes = checkedBytes(comm, kName, count, dtypeSize(dtype));
  checkBuffer(comm, kName, "data", data, count);
  comm.beginOp(OpKind::kPointToPoint, timeout, OpParams{int(dtype), -1, -1, count});
  if (comm.mpi()) return mpi::send(comm, data, count, dtype, peer);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "send ", bytes, " bytes to rank ", peer);
  unsigned char empty = 0;
  comm.send(peer, orEmpty(data, empty), bytes);
}

void recv(Communicator& comm, void* data, size_t count, DataType dtype, int peer,
          Millis timeout) {
  const char* kName = "recv";
  checkDtype(comm, kName, dtype);
  checkPeer(comm, kName, peer);
  const size_t bytes = checkedBytes(comm, kName, count, dtypeSize(dtype));
  checkBuffer(comm, kName, "data", data, count);
  comm.beginOp(OpKind::kPointToPoint, timeout, OpParams{int(dtype), -1, -1, count});
  if (comm.mpi()) return mpi::recv(comm, data, count, dtype, peer);
  NODECCL_TRACE("coll", comm.rank(), comm.size(), "recv ", bytes, " bytes from rank ", peer);
  // Into scratch, then copied: a peer lost midway leaves the caller's buffer as it was.
  unsigned char* tmp = scratchBytes(comm, bytes, kSlotOut);
  comm.recv(peer, tmp, bytes);
  if (bytes > 0) std::memcpy(data, tmp, bytes);
}

}  // namespace nodeccl
