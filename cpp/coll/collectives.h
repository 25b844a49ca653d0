// SPDX-License-Identifier: Apache-2.0
// The collectives, as free functions of a Communicator. Each validates its arguments (throwing
// kInvalidArgument naming the argument, the rank and the fix), calls comm.beginOp, then runs one
// algorithm; the algorithm files state their costs. `timeout` 0 means the communicator's default.
// Counts are element counts; buffers are host memory the caller keeps alive for the call.
#pragma once

#include <cstddef>
#include <vector>

#include "comm/communicator.h"
#include "common/dtype.h"

namespace nodeccl {

// In place: every rank ends with op(data of all ranks), bitwise identical on all ranks.
void allReduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op,
               Millis timeout = Millis(0));

// In place: every rank ends with root's data.
void broadcast(Communicator& comm, void* data, size_t count, DataType dtype, int root,
               Millis timeout = Millis(0));

// The root's `data` becomes op(data of all ranks); other ranks' data is left unchanged.
void reduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op, int root,
            Millis timeout = Millis(0));

// `out` (size * count elements) receives every rank's `in` (count elements) in rank order.
// `in` may alias out + rank * count.
void allGather(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
               Millis timeout = Millis(0));

// `in` holds size * count elements; `out` (count elements) receives block `rank` of
// op(in of all ranks). `in` is left unchanged.
void reduceScatter(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
                   ReduceOp op, Millis timeout = Millis(0));

// Returns once every rank has entered the barrier.
void barrier(Communicator& comm, Millis timeout = Millis(0));

// Point to point: sends `count` elements to `peer`, which must call recv with the same count.
void send(Communicator& comm, const void* data, size_t count, DataType dtype, int peer,
          Millis timeout = Millis(0));
void recv(Communicator& comm, void* data, size_t count, DataType dtype, int peer,
          Millis timeout = Millis(0));

// All-to-all with per-peer counts: this rank sends sendCounts[p] elements to rank p, taken
// from `in` at the prefix sum of sendCounts before p, and receives recvCounts[p] elements from
// rank p into `out` at the prefix sum of recvCounts before p. Both vectors have size() entries;
// recvCounts[p] here must equal rank p's sendCounts[rank]. Even splits pass equal counts.
void allToAll(Communicator& comm, const void* in, const std::vector<size_t>& sendCounts,
              void* out, const std::vector<size_t>& recvCounts, DataType dtype,
              Millis timeout = Millis(0));

// The root's `out` (size * count elements) receives every rank's `in` (count elements) in rank
// order; other ranks' `out` is not touched (may be null).
void gather(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
            int root, Millis timeout = Millis(0));

// Every rank's `out` (count elements) receives block `rank` of the root's `in` (size * count
// elements; only read on the root, may be null elsewhere).
void scatter(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
             int root, Millis timeout = Millis(0));

// One message of a batched point-to-point call: `bytes` bytes to or from `peer` (this rank
// itself is allowed: its sends are copied to its receives in order).
struct P2PSend {
  int peer;
  const void* data;
  size_t bytes;
};
struct P2PRecv {
  int peer;
  void* data;
  size_t bytes;
};

// Several sends and receives at once, in any order and with any peers, without deadlock: the
// messages between two ranks match in the order each rank listed them, and a receive must be
// the size of the send it matches. Both sides must use batchSendRecv (its messages carry no
// dtype or count of their own, so a plain recv, which checks those, rejects them).
void batchSendRecv(Communicator& comm, const std::vector<P2PSend>& sends,
                   const std::vector<P2PRecv>& recvs, Millis timeout = Millis(0));

}  // namespace nodeccl
