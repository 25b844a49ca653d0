// SPDX-License-Identifier: Apache-2.0
// NODECCL_BACKEND=mpi: every collective as one non-blocking MPI call on staging buffers
// (costs and rules in mpi_collectives.h).
#include "backend/mpi/mpi_collectives.h"

#include <atomic>
#include <climits>
#include <cstring>
#include <memory>

#include "backend/mpi/mpi_runtime.h"
#include "common/error.h"
#include "common/log.h"
#include "reduce/reduce.h"

namespace nodeccl {
namespace mpi {
namespace {

constexpr int kTag = 0x4e43;  // send/recv tag ("NC"); nodeccl is MPI_COMM_WORLD's only user

// Whether a live communicator runs on MPI_COMM_WORLD (attachBackend .. releaseBackend).
std::atomic<bool> worldClaimed{false};

// MPI counts are C ints. LIMITATION: one MPI call moves at most INT_MAX elements (bytes for
// the data-movement collectives, which send bytes); larger calls are refused, not truncated.
int toInt(const Communicator& comm, const char* coll, size_t n, const char* unit) {
  if (n > static_cast<size_t>(INT_MAX)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("LIMITATION: rank ", comm.rank(), ": ", coll, " of ", n, " ", unit,
                       " under NODECCL_BACKEND=mpi; MPI counts are C ints (at most ", INT_MAX,
                       "): split the call, or use the native backend"));
  }
  return static_cast<int>(n);
}

// The type MPI reduces in: half types travel as float32 (see mpi_collectives.h).
DataType wireType(DataType t) { return isHalfType(t) ? DataType::kFloat32 : t; }

Datatype mpiType(const Library& lib, DataType t) {
  switch (t) {
    case DataType::kFloat32: return lib.h.float32;
    case DataType::kFloat64: return lib.h.float64;
    case DataType::kInt32: return lib.h.int32;
    case DataType::kInt8: return lib.h.int8;
    case DataType::kUint8: return lib.h.uint8;
    default: NODECCL_CHECK(!"a half type reaches MPI only widened to float32");
  }
  return nullptr;
}

Op mpiOp(const Library& lib, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return lib.h.sum;  // avg: divided afterwards
    case ReduceOp::kProd: return lib.h.prod;
    case ReduceOp::kMin: return lib.h.min;
    case ReduceOp::kMax: return lib.h.max;
  }
  return lib.h.sum;
}

// A staging buffer of `bytes` (at least one byte, so MPI never sees a null address).
unsigned char* stage(std::vector<unsigned char>& v, size_t bytes) {
  try {
    v.resize(bytes > 0 ? bytes : 1);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kIo, strcat("cannot allocate ", bytes, " bytes of MPI staging "
                                       "memory; use smaller messages or free memory"));
  }
  return v.data();
}

// The caller's `count` elements of `dtype`, staged in the type MPI reduces in.
unsigned char* stageWide(std::vector<unsigned char>& v, const void* src, size_t count,
                         DataType dtype) {
  unsigned char* p = stage(v, count * dtypeSize(wireType(dtype)));
  if (isHalfType(dtype)) {
    toFloat32(src, reinterpret_cast<float*>(p), count, dtype);
  } else if (count > 0) {
    std::memcpy(p, src, count * dtypeSize(dtype));
  }
  return p;
}

// A reduced wide result back into the caller's buffer: divided for avg, rounded once for halves.
void unstageWide(const Communicator& comm, unsigned char* wide, void* dst, size_t count,
                 DataType dtype, ReduceOp op) {
  if (op == ReduceOp::kAvg) divideInPlace(wide, count, wireType(dtype), comm.size());
  if (isHalfType(dtype)) {
    fromFloat32(reinterpret_cast<const float*>(wide), dst, count, dtype);
  } else if (count > 0) {
    std::memcpy(dst, wide, count * dtypeSize(dtype));
  }
}

// Starts an MPI call (under the MPI mutex) and waits for it within the operation's deadline;
// abort() and errors of other ranks stop the wait.
template <typename Start>
void run(Communicator& comm, const char* coll, std::unique_ptr<Inflight>& f, Start start) {
  callLocked([&] { check(start(&f->req), strcat("rank ", comm.rank(), ": MPI ", coll)); });
  const OpInfo& op = comm.currentOp();
  std::string late = strcat(
      "rank ", comm.rank(), ": ", coll, " #", op.step, " (NODECCL_BACKEND=mpi) did not complete "
      "within ", op.timeoutMs, " ms; a rank did not call it or is stuck. LIMITATION: MPI cannot "
      "cancel a collective, so it stays pending and this communicator is unusable: end the job "
      "(every rank fails with this error)");
  wait(f, op.deadline, late, [&comm] {
    if (comm.usable()) return StopReason{};
    std::string why = comm.firstError();
    if (why.empty()) {
      return StopReason{strcat("rank ", comm.rank(), ": communicator was destroyed"),
                        int(ErrorCode::kDestroyed)};
    }
    return StopReason{why, int(comm.firstErrorCode())};
  });
}

}  // namespace

void attachBackend(const CommOptions& o) {
  if (o.backend == "native") return;
  if (o.backend != "mpi") {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", o.rank, ": unknown backend '", o.backend, "'; use native or mpi "
                       "(NODECCL_BACKEND=auto|native|mpi)"));
  }
  // LIMITATION: the MPI backend drives MPI_COMM_WORLD itself, not a communicator of its own, so
  // it serves the world communicator only (sub-communicators take the native transports), and
  // one at a time: two would interleave their collectives on the same MPI communicator.
  const World& w = initialize();
  if (w.rank != o.rank || w.size != o.size) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", o.rank, " of ", o.size, ": NODECCL_BACKEND=mpi runs the world "
                       "communicator of an mpirun job, but MPI_COMM_WORLD has this process as "
                       "rank ", w.rank, " of ", w.size, "; do not pass rank/worldSize options "
                       "that differ from mpirun's, or use NODECCL_BACKEND=native"));
  }
  if (worldClaimed.exchange(true)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("LIMITATION: rank ", o.rank, ": another communicator of this process "
                       "already runs on MPI (NODECCL_BACKEND=mpi); destroy() it first, or use "
                       "NODECCL_BACKEND=native for this one"));
  }
  NODECCL_INFO("init", o.rank, o.size, "backend mpi: collectives run through ", w.version,
               " (", w.library, ")");
}

void releaseBackend() { worldClaimed.store(false); }

void allReduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op,
               Millis timeout) {
  comm.beginOp(OpKind::kAllReduce, timeout, OpParams{int(dtype), int(op), -1, count});
  comm.noteAlgorithm("allReduce", "mpi", count * dtypeSize(dtype));
  const Library& lib = library();
  const int n = toInt(comm, "allReduce", count, "elements");
  const size_t wideBytes = count * dtypeSize(wireType(dtype));
  auto f = std::make_unique<Inflight>();
  unsigned char* in = stageWide(f->a, data, count, dtype);
  unsigned char* out = stage(f->b, wideBytes);
  run(comm, "allReduce", f, [&](Request* req) {
    return lib.api.Iallreduce(in, out, n, mpiType(lib, wireType(dtype)), mpiOp(lib, op),
                              lib.h.world, req);
  });
  unstageWide(comm, out, data, count, dtype, op);
}

void broadcast(Communicator& comm, void* data, size_t count, DataType dtype, int root) {
  const Library& lib = library();
  const size_t bytes = count * dtypeSize(dtype);
  const int n = toInt(comm, "broadcast", bytes, "bytes");
  auto f = std::make_unique<Inflight>();
  unsigned char* buf = stage(f->a, bytes);
  if (comm.rank() == root && bytes > 0) std::memcpy(buf, data, bytes);
  run(comm, "broadcast", f, [&](Request* req) {
    return lib.api.Ibcast(buf, n, lib.h.byte, root, lib.h.world, req);
  });
  if (comm.rank() != root && bytes > 0) std::memcpy(data, buf, bytes);
}

void reduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op,
            int root) {
  const Library& lib = library();
  const int n = toInt(comm, "reduce", count, "elements");
  auto f = std::make_unique<Inflight>();
  unsigned char* in = stageWide(f->a, data, count, dtype);
  unsigned char* out = stage(f->b, count * dtypeSize(wireType(dtype)));
  run(comm, "reduce", f, [&](Request* req) {
    return lib.api.Ireduce(in, out, n, mpiType(lib, wireType(dtype)), mpiOp(lib, op), root,
                           lib.h.world, req);
  });
  if (comm.rank() == root) unstageWide(comm, out, data, count, dtype, op);
}

void allGather(Communicator& comm, const void* in, void* out, size_t count, DataType dtype) {
  const Library& lib = library();
  const size_t bytes = count * dtypeSize(dtype);
  const size_t total = bytes * static_cast<size_t>(comm.size());
  const int n = toInt(comm, "allGather", bytes, "bytes");
  toInt(comm, "allGather", total, "bytes in all");
  auto f = std::make_unique<Inflight>();
  unsigned char* sbuf = stage(f->a, bytes);
  unsigned char* rbuf = stage(f->b, total);
  if (bytes > 0) std::memcpy(sbuf, in, bytes);  // `in` may alias `out`
  run(comm, "allGather", f, [&](Request* req) {
    return lib.api.Iallgather(sbuf, n, lib.h.byte, rbuf, n, lib.h.byte, lib.h.world, req);
  });
  if (total > 0) std::memcpy(out, rbuf, total);
}

void reduceScatter(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
                   ReduceOp op) {
  const Library& lib = library();
  const size_t all = count * static_cast<size_t>(comm.size());
  const int n = toInt(comm, "reduceScatter", count, "elements");
  toInt(comm, "reduceScatter", all, "elements in all");
  auto f = std::make_unique<Inflight>();
  unsigned char* sbuf = stageWide(f->a, in, all, dtype);
  unsigned char* rbuf = stage(f->b, count * dtypeSize(wireType(dtype)));
  run(comm, "reduceScatter", f, [&](Request* req) {
    return lib.api.Ireduce_scatter_block(sbuf, rbuf, n, mpiType(lib, wireType(dtype)),
                                         mpiOp(lib, op), lib.h.world, req);
  });
  unstageWide(comm, rbuf, out, count, dtype, op);
}

void barrier(Communicator& comm) {
  const Library& lib = library();
  auto f = std::make_unique<Inflight>();
  run(comm, "barrier", f, [&](Request* req) { return lib.api.Ibarrier(lib.h.world, req); });
}

// Sends are staged too: a send that times out may still be read by MPI after the call returns.
void send(Communicator& comm, const void* data, size_t count, DataType dtype, int peer) {
  const Library& lib = library();
  const size_t bytes = count * dtypeSize(dtype);
  const int n = toInt(comm, "send", bytes, "bytes");
  auto f = std::make_unique<Inflight>();
  unsigned char* buf = stage(f->a, bytes);
  if (bytes > 0) std::memcpy(buf, data, bytes);
  run(comm, "send", f, [&](Request* req) {
    return lib.api.Isend(buf, n, lib.h.byte, peer, kTag, lib.h.world, req);
  });
}

// A message longer than `count` fails in MPI_Test with MPI_ERR_TRUNCATE (thrown as kIo).
void recv(Communicator& comm, void* data, size_t count, DataType dtype, int peer) {
  const Library& lib = library();
  const size_t bytes = count * dtypeSize(dtype);
  const int n = toInt(comm, "recv", bytes, "bytes");
  auto f = std::make_unique<Inflight>();
  unsigned char* buf = stage(f->a, bytes);
  run(comm, "recv", f, [&](Request* req) {
    return lib.api.Irecv(buf, n, lib.h.byte, peer, kTag, lib.h.world, req);
  });
  if (bytes > 0) std::memcpy(data, buf, bytes);
}

// Counts and displacements in bytes (MPI_BYTE), each and their totals at most INT_MAX.
void allToAll(Communicator& comm, const void* in, const std::vector<size_t>& sendCounts,
              void* out, const std::vector<size_t>& recvCounts, DataType dtype) {
  const Library& lib = library();
  const size_t p = sendCounts.size(), elem = dtypeSize(dtype);
  auto f = std::make_unique<Inflight>();
  f->counts.resize(2 * p);  // send counts, then receive counts
  f->displs.resize(2 * p);
  size_t sent = 0, received = 0;
  for (size_t i = 0; i < p; ++i) {
    f->displs[i] = toInt(comm, "allToAll", sent, "bytes of input");
    f->displs[p + i] = toInt(comm, "allToAll", received, "bytes of output");
    f->counts[i] = toInt(comm, "allToAll", sendCounts[i] * elem, "bytes to one rank");
    f->counts[p + i] = toInt(comm, "allToAll", recvCounts[i] * elem, "bytes from one rank");
    sent += sendCounts[i] * elem;
    received += recvCounts[i] * elem;
  }
  unsigned char* sbuf = stage(f->a, sent);
  unsigned char* rbuf = stage(f->b, received);
  if (sent > 0) std::memcpy(sbuf, in, sent);
  const int* c = f->counts.data();
  const int* d = f->displs.data();
  run(comm, "allToAll", f, [&](Request* req) {
    return lib.api.Ialltoallv(sbuf, c, d, lib.h.byte, rbuf, c + p, d + p, lib.h.byte,
                              lib.h.world, req);
  });
  if (received > 0) std::memcpy(out, rbuf, received);
}

void gather(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
            int root) {
  const Library& lib = library();
  const size_t bytes = count * dtypeSize(dtype);
  const size_t total = bytes * static_cast<size_t>(comm.size());
  const int n = toInt(comm, "gather", bytes, "bytes");
  toInt(comm, "gather", total, "bytes in all");
  auto f = std::make_unique<Inflight>();
  unsigned char* sbuf = stage(f->a, bytes);
  unsigned char* rbuf = stage(f->b, comm.rank() == root ? total : 0);
  if (bytes > 0) std::memcpy(sbuf, in, bytes);
  run(comm, "gather", f, [&](Request* req) {
    return lib.api.Igather(sbuf, n, lib.h.byte, rbuf, n, lib.h.byte, root, lib.h.world, req);
  });
  if (comm.rank() == root && total > 0) std::memcpy(out, rbuf, total);
}

void scatter(Communicator& comm, const void* in, void* out, size_t count, DataType dtype,
             int root) {
  const Library& lib = library();
  const size_t bytes = count * dtypeSize(dtype);
  const size_t total = bytes * static_cast<size_t>(comm.size());
  const int n = toInt(comm, "scatter", bytes, "bytes");
  toInt(comm, "scatter", total, "bytes in all");
  auto f = std::make_unique<Inflight>();
  unsigned char* sbuf = stage(f->a, comm.rank() == root ? total : 0);
  unsigned char* rbuf = stage(f->b, bytes);
  if (comm.rank() == root && total > 0) std::memcpy(sbuf, in, total);
  run(comm, "scatter", f, [&](Request* req) {
    return lib.api.Iscatter(sbuf, n, lib.h.byte, rbuf, n, lib.h.byte, root, lib.h.world, req);
  });
  if (bytes > 0) std::memcpy(out, rbuf, bytes);
}

}  // namespace mpi
}  // namespace nodeccl
