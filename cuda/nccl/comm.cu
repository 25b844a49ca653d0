// SPDX-License-Identifier: Apache-2.0
// A NCCL communicator on one device: init from a unique id, and collectives that never hang on
// a dead peer. Each operation is enqueued on the communicator's own stream, then waited for by
// polling: the stream finished (done), NCCL reported an asynchronous error (abort, fail with
// NCCL's text), or the deadline passed (abort, fail with kTimeout). Once aborted, every later
// call fails with kAborted: NCCL cannot resume an aborted communicator.
// Cost: NCCL's own (ring or tree); polling adds at most ~50 us of latency per operation.
#include <cuda_runtime.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/dtype.h"
#include "common/error.h"
#include "cuda.h"
#include "nccl/nccl.h"
#include "nccl/nccl_api.h"

namespace nodeccl {
namespace nccl {

struct Comm {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0, rank = 0, size = 0;
  std::mutex mu;          // one operation at a time (callers queue them in order)
  std::string abortedBy;  // non-empty once aborted (guarded by mu)

  // abort() from another thread: a request the operation in flight acts on at its next poll.
  std::atomic<bool> abortRequested{false};
  std::mutex requestMu;
  std::string requestReason;
};

namespace {

// Throws kIo (kInvalidArgument, kPeerLost) with NCCL's text and its last error for `comm`.
void checkNccl(const Api& api, ncclResult_t r, const Comm* c, const char* what) {
  if (r == ncclSuccess) return;
  std::string detail = api.getErrorString(r);
  if (api.getLastError != nullptr) {
    const char* last = api.getLastError(c ? c->comm : nullptr);
    if (last != nullptr && *last != '\0') detail += strcat(": ", last);
  }
  ErrorCode code = r == ncclInvalidArgument || r == ncclInvalidUsage ? ErrorCode::kInvalidArgument
                   : r == ncclRemoteError                           ? ErrorCode::kPeerLost
                                                                    : ErrorCode::kIo;
  std::string where = c ? strcat("rank ", c->rank, " of ", c->size, ": ") : std::string();
  throw Error(code, strcat(where, what, " failed: NCCL error ", static_cast<int>(r), " (",
                           detail, ")"));
}

ncclDataType_t toNccl(int dtype) {
  switch (static_cast<DataType>(dtype)) {
    case DataType::kFloat32: return ncclFloat32;
    case DataType::kFloat64: return ncclFloat64;
    case DataType::kInt32: return ncclInt32;
    case DataType::kInt8: return ncclInt8;
    case DataType::kUint8: return ncclUint8;
    case DataType::kFloat16: return ncclFloat16;
    case DataType::kBFloat16: return ncclBfloat16;
  }
  throw Error(ErrorCode::kInvalidArgument, strcat("NCCL: dtype ", dtype, " is not known"));
}

ncclRedOp_t toNccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kProd: return ncclProd;
    case ReduceOp::kMin: return ncclMin;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kAvg: return ncclAvg;
  }
  throw Error(ErrorCode::kInvalidArgument,
              strcat("NCCL: reduce op ", static_cast<int>(op), " is not known"));
}

void abortLocked(const Api& api, Comm& c, const std::string& why) {
  if (!c.abortedBy.empty()) return;
  c.abortedBy = why;
  api.commAbort(c.comm);  // frees NCCL's resources; the handle must not be used again
  c.comm = nullptr;
}

// Carries out an abort() requested by another thread; throws kAborted if there was one.
void honourAbortRequest(const Api& api, Comm& c) {
  if (!c.abortRequested.load()) return;
  std::string why;
  {
    std::lock_guard<std::mutex> g(c.requestMu);
    why = c.requestReason;
  }
  abortLocked(api, c, why);
  throw Error(ErrorCode::kAborted, strcat("rank ", c.rank, ": the NCCL communicator was ",
                                          "aborted (", c.abortedBy, "); create a new one"));
}

// Waits for the stream, polling NCCL's asynchronous error; aborts on an error or the deadline.
void waitLocked(const Api& api, Comm& c, const char* what, double timeoutMs) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::duration<double, std::milli>(timeoutMs);
  auto pause = std::chrono::microseconds(2);
  for (;;) {
    cudaError_t q = cudaStreamQuery(c.stream);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) cuda::check(q, what);
    honourAbortRequest(api, c);

    ncclResult_t async = ncclSuccess;
    checkNccl(api, api.commGetAsyncError(c.comm, &async), &c, "ncclCommGetAsyncError");
    if (async != ncclSuccess && async != ncclInProgress) {
      std::string msg;
      try {
        checkNccl(api, async, &c, what);
      } catch (const Error& e) {
        msg = e.what();
      }
      abortLocked(api, c, msg);
      throw Error(async == ncclRemoteError ? ErrorCode::kPeerLost : ErrorCode::kIo,
                  msg + "; the communicator was aborted");
    }
    if (Clock::now() > deadline) {
      std::string msg = strcat("rank ", c.rank, " of ", c.size, ": ", what, " did not finish ",
                               "within ", timeoutMs, " ms (a peer may be dead or not calling "
                               "the same collective); the NCCL communicator was aborted");
      abortLocked(api, c, msg);
      throw Error(ErrorCode::kTimeout, msg);
    }
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::microseconds(50)) pause *= 2;
  }
}

void enqueue(const Api& api, Comm& c, const cuda::NcclCall& k) {
  ncclDataType_t t = toNccl(k.dtype);
  ncclRedOp_t op = toNccl(static_cast<ReduceOp>(k.reduceOp));
  auto* s = reinterpret_cast<cudaStream_t>(c.stream);
  switch (k.op) {
    case cuda::NcclOp::kAllReduce:
      return checkNccl(api, api.allReduce(k.send, k.recv, k.count, t, op, c.comm, s), &c,
                       "ncclAllReduce");
    case cuda::NcclOp::kBroadcast:
      return checkNccl(api, api.broadcast(k.send, k.recv, k.count, t, k.peer, c.comm, s), &c,
                       "ncclBroadcast");
    case cuda::NcclOp::kReduce:
      return checkNccl(api, api.reduce(k.send, k.recv, k.count, t, op, k.peer, c.comm, s), &c,
                       "ncclReduce");
    case cuda::NcclOp::kAllGather:
      return checkNccl(api, api.allGather(k.send, k.recv, k.count, t, c.comm, s), &c,
                       "ncclAllGather");
    case cuda::NcclOp::kReduceScatter:
      return checkNccl(api, api.reduceScatter(k.send, k.recv, k.count, t, op, c.comm, s), &c,
                       "ncclReduceScatter");
    case cuda::NcclOp::kSend:
      return checkNccl(api, api.send(k.send, k.count, t, k.peer, c.comm, s), &c, "ncclSend");
    case cuda::NcclOp::kRecv:
      return checkNccl(api, api.recv(k.recv, k.count, t, k.peer, c.comm, s), &c, "ncclRecv");
  }
  throw Error(ErrorCode::kInvalidArgument,
              strcat("NCCL: operation ", static_cast<int>(k.op), " is not known"));
}

}  // namespace

void uniqueId(uint8_t* out) {
  const Api& api = load();
  ncclUniqueId id;
  checkNccl(api, api.getUniqueId(&id), nullptr, "ncclGetUniqueId");
  std::memcpy(out, id.internal, sizeof(id.internal));
}

Comm* init(int device, int rank, int size, const uint8_t* id) {
  const Api& api = load();
  if (size < 1 || rank < 0 || rank >= size) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("NCCL init: rank ", rank, " is not in 0..", size - 1));
  }
  auto c = std::make_unique<Comm>();
  c->device = device;
  c->rank = rank;
  c->size = size;
  cuda::check(cudaSetDevice(device), "cudaSetDevice");
  cudaStream_t stream;
  cuda::check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  c->stream = stream;
  ncclUniqueId uid;
  std::memcpy(uid.internal, id, sizeof(uid.internal));
  ncclResult_t r = api.commInitRank(&c->comm, size, uid, rank);
  if (r != ncclSuccess) {
    cudaStreamDestroy(stream);
    checkNccl(api, r, c.get(), "ncclCommInitRank");
  }
  return c.release();
}

void run(Comm& c, const cuda::NcclCall& call) {
  const Api& api = load();
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.abortedBy.empty()) honourAbortRequest(api, c);
  if (!c.abortedBy.empty()) {
    throw Error(ErrorCode::kAborted, strcat("rank ", c.rank, ": the NCCL communicator was ",
                                            "aborted (", c.abortedBy, "); create a new one"));
  }
  cuda::check(cudaSetDevice(c.device), "cudaSetDevice");
  if (call.op == cuda::NcclOp::kSend || call.op == cuda::NcclOp::kRecv) {
    // Point-to-point calls go in a group, as NCCL recommends even for a single one.
    checkNccl(api, api.groupStart(), &c, "ncclGroupStart");
    try {
      enqueue(api, c, call);
    } catch (...) {
      api.groupEnd();
      throw;
    }
    checkNccl(api, api.groupEnd(), &c, "ncclGroupEnd");
  } else {
    enqueue(api, c, call);
  }
  waitLocked(api, c, call.op == cuda::NcclOp::kAllReduce ? "allReduce" : "NCCL operation",
             call.timeoutMs);
}

void abort(Comm& c, const std::string& reason) {
  const Api& api = load();
  std::string why = reason.empty() ? std::string("aborted by the application") : reason;
  {
    std::lock_guard<std::mutex> g(c.requestMu);
    c.requestReason = why;
  }
  c.abortRequested = true;
  // Idle: abort now. Busy: the operation in flight aborts at its next poll (within ~50 us).
  std::unique_lock<std::mutex> lock(c.mu, std::try_to_lock);
  if (lock.owns_lock()) abortLocked(api, c, why);
}

void destroy(Comm* c) {
  const Api& api = load();
  {
    std::lock_guard<std::mutex> lock(c->mu);
    if (c->abortedBy.empty() && c->comm != nullptr) {
      checkNccl(api, api.commDestroy(c->comm), c, "ncclCommDestroy");
    }
    cudaStreamDestroy(c->stream);
  }
  delete c;
}

}  // namespace nccl
}  // namespace nodeccl
