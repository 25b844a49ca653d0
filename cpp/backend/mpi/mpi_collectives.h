// SPDX-License-Identifier: Apache-2.0
// The collectives of NODECCL_BACKEND=mpi: each one is a single non-blocking MPI call on
// MPI_COMM_WORLD (MPI_Iallreduce, MPI_Ibcast, ...), polled with MPI_Test (mpi_runtime.h) so
// that the operation's deadline still gives kTimeout and abort() still wakes it. Cost: whatever
// algorithm the MPI library picks, plus one copy of the input and one of the output per call
// (MPI works on staging buffers, never on the caller's: a timed-out request may still write).
//
// The coll/*.cc entry points call these after their argument checks, so argument errors are
// the same under both backends. allReduce begins its operation itself (the native path's
// direct algorithm begins its own); the others are called after comm.beginOp.
//
// float16/bfloat16 reductions are widened to float32, reduced by MPI in float32 and rounded
// once, as the native ring does (MPI has no half types): twice the bytes on the wire. avg is
// an MPI sum divided by the world size (integer division for integer types), as natively.
#pragma once

#include <cstddef>
#include <vector>

#include "comm/communicator.h"
#include "common/dtype.h"

namespace nodeccl {
namespace mpi {

// Checks CommOptions::backend ("native" or "mpi"). For "mpi", checks that MPI is initialized
// and that this communicator is MPI_COMM_WORLD (same rank and size): the MPI backend runs the
// world communicator of an mpirun job; sub-communicators use the native transports. Claims
// MPI_COMM_WORLD until releaseBackend() (Communicator::destroy): one MPI communicator at a time.
void attachBackend(const CommOptions& opts);
void releaseBackend();

void allReduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op,
               Millis timeout);
void broadcast(Communicator& comm, void* data, size_t count, DataType dtype, int root);
void reduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op, int root);
void allGather(Communicator& comm, const void* in, void* out, size_t count, DataType dtype);
void reduceScatter(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
                   ReduceOp op);
void barrier(Communicator& comm);
void send(Communicator& comm, const void* data, size_t count, DataType dtype, int peer);
void recv(Communicator& comm, void* data, size_t count, DataType dtype, int peer);
void allToAll(Communicator& comm, const void* in, const std::vector<size_t>& sendCounts,
              void* out, const std::vector<size_t>& recvCounts, DataType dtype);
void gather(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
            int root);
void scatter(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
             int root);

}  // namespace mpi
}  // namespace nodeccl
