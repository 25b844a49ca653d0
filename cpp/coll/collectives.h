// SPDX-License-Identifier: Apache-2.0
// The collectives, as free functions of a Communicator. Each validates its arguments (throwing
// kInvalidArgument naming the argument, the rank and the fix), calls comm.beginOp, then runs one
// algorithm; the algorithm files state their costs. `timeout` 0 means the communicator's default.
// Counts are element counts; buffers are host memory the caller keeps alive for the call.
#pragma once

#include <cstddef>

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

}  // namespace nodeccl
